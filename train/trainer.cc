#include "train/trainer.h"

#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/architectures.h"
#include "model/checkpoint.h"
#include "model/tensor_resize.h"
#include "model/torch_model.h"
#include "model/torch_runtime.h"
#include "train/batch_loader.h"
#include "train/drkd.h"
#include "train/gradient_report.h"
#include "train/ssa_loss.h"
#include "train/teacher_input.h"

namespace segserve {
namespace {

namespace F = torch::nn::functional;
namespace fs = std::filesystem;

absl::StatusOr<BuiltinNetwork> BuildNetwork(const NetworkSpec& spec,
                                            uint64_t seed) {
  torch::manual_seed(seed);
  absl::StatusOr<BuiltinNetwork> network =
      CreateBuiltinNetwork(spec.architecture, spec.num_classes);
  if (!network.ok()) return network.status();
  if (!spec.weights.empty()) {
    SEGSERVE_RETURN_IF_ERROR(
        LoadStateDictFile(spec.weights, network->module.get()));
  }
  return network;
}

// Loads the backbone's part of the state dict at `path` (the names under
// network.backbone_prefixes; every one must be there) and keeps the rest of
// the network as initialised: a pretrained backbone under a new head.
absl::Status LoadBackbone(const std::string& path, BuiltinNetwork& network) {
  SEGSERVE_ASSIGN_OR_RETURN(StateDict source, ReadStateDict(path));
  std::map<std::string, torch::Tensor> by_name(source.begin(), source.end());
  StateDict merged = ModuleState(*network.module);
  int64_t loaded = 0;
  for (auto& [name, tensor] : merged) {
    const bool in_backbone = std::any_of(
        network.backbone_prefixes.begin(), network.backbone_prefixes.end(),
        [&name](const std::string& prefix) {
          return absl::StartsWith(name, prefix);
        });
    if (!in_backbone) continue;
    auto found = by_name.find(name);
    if (found == by_name.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": has no '", name,
                       "'; --init_backbone needs the weights of "
                       "a network with the same backbone"));
    }
    tensor = found->second;
    ++loaded;
  }
  if (loaded == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        network.architecture, " names no backbone to load from ", path));
  }
  return LoadStateDict(merged, path, network.module.get());
}

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::max(0.0, seconds));
  return s >= 3600 ? absl::StrFormat("%dh%02dm", s / 3600, s / 60 % 60)
                   : absl::StrFormat("%dm%02ds", s / 60, s % 60);
}

// Linear warm-up from 1% of the peak, then polynomial decay to 0.
double LearningRate(const TrainerOptions& options, int64_t step) {
  if (step < options.warmup_steps) {
    const double t = static_cast<double>(step) / options.warmup_steps;
    return options.learning_rate * (0.01 + 0.99 * t);
  }
  const double progress =
      static_cast<double>(step) / static_cast<double>(options.steps);
  return options.learning_rate *
         std::pow(std::max(0.0, 1.0 - progress), options.poly_power);
}

// Writes `path` through `write` (given a temporary name, returning a
// status), then renames it into place, so a stop mid-write never leaves a
// torn file.
absl::Status WriteAtomically(
    const std::function<absl::Status(const std::string&)>& write,
    const std::string& path) {
  const std::string partial = path + ".partial";
  absl::Status written;
  try {
    written = write(partial);
  } catch (const std::exception& e) {
    written = absl::InternalError(
        absl::StrCat(path, ": cannot write: ", ExceptionMessage(e)));
  }
  SEGSERVE_RETURN_IF_ERROR(written);
  std::error_code error;
  fs::rename(partial, path, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot write: ", error.message()));
  }
  return absl::OkStatus();
}

absl::Status SaveWeights(const torch::nn::Module& module,
                         const std::string& path) {
  return WriteAtomically(
      [&module](const std::string& partial) {
        return SaveStateDict(ModuleState(module), partial);
      },
      path);
}

// The parameters AdamW decays (weights of convs and linears) and those it
// does not (biases, norm scales and shifts, fusion weights: all 1-D).
std::vector<torch::optim::OptimizerParamGroup> ParameterGroups(
    const std::vector<torch::Tensor>& parameters, double weight_decay) {
  std::vector<torch::Tensor> decay;
  std::vector<torch::Tensor> no_decay;
  for (const torch::Tensor& p : parameters) {
    if (!p.requires_grad()) continue;
    (p.dim() > 1 ? decay : no_decay).push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      decay, std::make_unique<torch::optim::AdamWOptions>(
                 torch::optim::AdamWOptions().weight_decay(weight_decay)));
  groups.emplace_back(no_decay,
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions().weight_decay(0)));
  return groups;
}

struct Trainee {
  BuiltinNetwork student;
  // The SSA classifier trained with its paper's losses (train/ssa_loss.h).
  bool ssa_training = false;
  std::unique_ptr<BuiltinNetwork> teacher;
  DrkdDistiller distiller{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
};

absl::StatusOr<Trainee> Prepare(const TrainerOptions& options) {
  Trainee trainee;
  SEGSERVE_ASSIGN_OR_RETURN(trainee.student,
                            BuildNetwork(options.student, options.seed));
  if (trainee.student.freeze_backbone_norm) {
    trainee.student.freeze_backbone_norm(options.freeze_backbone_norm);
  }
  if (!options.init_backbone.empty()) {
    SEGSERVE_RETURN_IF_ERROR(
        LoadBackbone(options.init_backbone, trainee.student));
  }
  trainee.student.module->train();
  trainee.ssa_training =
      options.ssa_losses &&
      static_cast<bool>(trainee.student.forward_ssa_training);
  // Measured: SGCPNet trains about 2x faster with channels-last weights
  // and activations, as it runs inference.
  if (options.channels_last && trainee.student.prefers_channels_last) {
    UseChannelsLast(trainee.student);
  }
  std::vector<torch::Tensor> parameters = trainee.student.module->parameters();
  if (!options.teacher.architecture.empty()) {
    if (options.teacher.weights.empty()) {
      return absl::InvalidArgumentError(
          "distillation needs the teacher's trained weights");
    }
    SEGSERVE_ASSIGN_OR_RETURN(BuiltinNetwork teacher,
                              BuildNetwork(options.teacher, options.seed));
    trainee.teacher = std::make_unique<BuiltinNetwork>(std::move(teacher));
    trainee.teacher->module->eval();
    if (options.channels_last && trainee.teacher->prefers_channels_last) {
      UseChannelsLast(*trainee.teacher);
    }
    for (torch::Tensor& p : trainee.teacher->module->parameters()) {
      p.set_requires_grad(false);
    }
    DistillWeights weights;
    weights.pixel_relation = options.pixel_relation_weight;
    weights.class_relation = options.class_relation_weight;
    weights.logits_kl = options.logits_kl_weight;
    weights.temperature = options.temperature;
    torch::manual_seed(options.seed + 1);
    trainee.distiller = DrkdDistiller(trainee.student.feature_channels,
                                      trainee.teacher->feature_channels,
                                      options.student.num_classes, weights);
    trainee.distiller->train();
    for (const torch::Tensor& p : trainee.distiller->parameters()) {
      parameters.push_back(p);
    }
  }
  trainee.optimizer = std::make_unique<torch::optim::AdamW>(
      ParameterGroups(parameters, options.weight_decay),
      torch::optim::AdamWOptions(options.learning_rate));
  return trainee;
}

absl::StatusOr<int64_t> Resume(const TrainerOptions& options,
                               Trainee& trainee) {
  const fs::path dir(options.resume);
  SEGSERVE_RETURN_IF_ERROR(LoadStateDictFile((dir / "model.pt").string(),
                                             trainee.student.module.get()));
  const std::string state_path = (dir / "trainer_state.pt").string();
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(state_path);
    torch::Tensor step;
    archive.read("step", step);
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    trainee.optimizer->load(optimizer_archive);
    if (trainee.distiller) {
      torch::serialize::InputArchive distiller_archive;
      archive.read("distiller", distiller_archive);
      trainee.distiller->load(distiller_archive);
    }
    return step.item<int64_t>();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(state_path,
                     ": cannot resume from it (was it written by a run with "
                     "the same options?): ",
                     ExceptionMessage(e)));
  }
}

absl::Status Checkpoint(const TrainerOptions& options, Trainee& trainee,
                        int64_t step) {
  const fs::path dir(options.checkpoint_dir);
  std::error_code error;
  fs::create_directories(dir, error);
  SEGSERVE_RETURN_IF_ERROR(
      SaveWeights(*trainee.student.module, (dir / "model.pt").string()));
  return WriteAtomically(
      [&](const std::string& path) {
        torch::serialize::OutputArchive archive;
        archive.write("step", torch::tensor(step));
        torch::serialize::OutputArchive optimizer_archive;
        trainee.optimizer->save(optimizer_archive);
        archive.write("optimizer", optimizer_archive);
        if (trainee.distiller) {
          torch::serialize::OutputArchive distiller_archive;
          trainee.distiller->save(distiller_archive);
          archive.write("distiller", distiller_archive);
        }
        archive.save_to(path);
        return absl::OkStatus();
      },
      (dir / "trainer_state.pt").string());
}

// Running means of the logged losses between progress lines.
struct LossMeter {
  double total = 0, ce = 0, pixel = 0, klass = 0, kl = 0;
  // The SSA terms by name (SsaLosses::Named); empty when not trained so.
  std::vector<std::pair<std::string, double>> ssa;
  int count = 0;
  void Add(double t, double c, double p, double k, double l) {
    total += t, ce += c, pixel += p, klass += k, kl += l, ++count;
  }
  void AddSsa(const SsaLosses& losses) {
    const auto terms = losses.Named();
    ssa.resize(terms.size());
    for (size_t i = 0; i < terms.size(); ++i) {
      ssa[i].first = terms[i].first;
      ssa[i].second += terms[i].second.item<double>();
    }
  }
};

std::string ProgressLine(const TrainerOptions& options, int64_t step,
                         const LossMeter& meter, double lr,
                         double images_per_s) {
  const double n = std::max(1, meter.count);
  constexpr int kBarWidth = 20;
  const int filled =
      static_cast<int>(kBarWidth * static_cast<double>(step) / options.steps);
  std::string line = absl::StrFormat(
      "step %d/%d [%s%s] loss %.4f (ce %.4f", step, options.steps,
      std::string(filled, '#'), std::string(kBarWidth - filled, '.'),
      meter.total / n, meter.ce / n);
  if (options.pixel_relation_weight > 0) {
    absl::StrAppendFormat(&line, " pixel %.4f", meter.pixel / n);
  }
  if (options.class_relation_weight > 0) {
    absl::StrAppendFormat(&line, " class %.4f", meter.klass / n);
  }
  if (options.logits_kl_weight > 0) {
    absl::StrAppendFormat(&line, " kl %.4f", meter.kl / n);
  }
  if (!meter.ssa.empty()) line += " ssa:";
  for (const auto& [name, sum] : meter.ssa) {
    absl::StrAppendFormat(&line, " %s %.4f", name, sum / n);
  }
  const double remaining_images = static_cast<double>(options.steps - step) *
                                  options.batch_size * options.accumulation;
  absl::StrAppendFormat(
      &line, ") lr %.2e %.1f img/s ETA %s", lr, images_per_s,
      FormatDuration(remaining_images / std::max(images_per_s, 1e-9)));
  return line;
}

// The parameters of the network that serves: all but the SSA classifier's
// training-only ground-truth branch, which only its own terms reach (their
// gradient there would swell their norms and dilute their cosines).
std::vector<torch::Tensor> ServedParameters(const torch::nn::Module& module) {
  std::vector<torch::Tensor> served;
  for (const auto& item : module.named_parameters()) {
    if (item.key().find("gt_center_") == std::string::npos) {
      served.push_back(item.value());
    }
  }
  return served;
}

// Every loss term with its weight, cross-entropy first, for GradientReport.
std::vector<WeightedLoss> LossTerms(const TrainerOptions& options,
                                    const torch::Tensor& ce,
                                    const DistillLosses& distill,
                                    const SsaLosses& ssa) {
  auto weighted = [](const torch::Tensor& t, double weight) {
    return t.defined() ? t * weight : torch::Tensor();
  };
  std::vector<WeightedLoss> terms = {
      {"ce", ce},
      {"pixel",
       weighted(distill.pixel_relation, options.pixel_relation_weight)},
      {"class",
       weighted(distill.class_relation, options.class_relation_weight)},
      {"kl", weighted(distill.logits_kl, options.logits_kl_weight)}};
  for (const auto& [name, value] : ssa.Named()) terms.push_back({name, value});
  return terms;
}

double ScalarOr0(const torch::Tensor& t) {
  return t.defined() ? t.item<double>() : 0.0;
}

}  // namespace

absl::Status Train(const TrainerOptions& options,
                   const LabeledImageSource& data, std::ostream& log) {
  if (options.steps < 1 || options.batch_size < 1 || options.accumulation < 1) {
    return absl::InvalidArgumentError(
        "steps, batch_size and accumulation must each be at least 1");
  }
  SetTorchThreads(options.threads);
  SEGSERVE_ASSIGN_OR_RETURN(Trainee trainee, Prepare(options));
  int64_t step = 0;
  if (!options.resume.empty()) {
    SEGSERVE_ASSIGN_OR_RETURN(step, Resume(options, trainee));
    log << "resumed at step " << step << " from " << options.resume << "\n";
  }

  BatchLoader::Options loader_options;
  loader_options.batch_size = options.batch_size;
  loader_options.first_sample =
      step * options.batch_size * options.accumulation;
  loader_options.seed = options.seed;
  loader_options.preprocess = options.student.preprocess;
  loader_options.augment = options.augment;
  BatchLoader loader(data, loader_options);

  using Clock = std::chrono::steady_clock;
  auto interval_start = Clock::now();
  int64_t interval_images = 0;
  LossMeter meter;
  std::string gradient_line;  // GradientReport's, for the next progress line.
  try {
    while (step < options.steps) {
      const double lr = LearningRate(options, step);
      for (auto& group : trainee.optimizer->param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      }
      trainee.optimizer->zero_grad();
      for (int a = 0; a < options.accumulation; ++a) {
        SEGSERVE_ASSIGN_OR_RETURN(TrainingBatch batch, loader.Next());
        const int64_t h = batch.input.size(2);
        const int64_t w = batch.input.size(3);
        DecoderOutputs student;
        SsaLosses ssa;
        if (trainee.ssa_training) {
          SsaTrainingOutputs outputs =
              trainee.student.forward_ssa_training(batch.input, batch.labels);
          ssa = ComputeSsaLosses(outputs, batch.labels, kIgnoreLabel);
          student.logits = outputs.logits;
          student.features = outputs.features;
        } else if (trainee.teacher) {
          student = trainee.student.forward_with_features(batch.input);
        } else {
          student.logits = trainee.student.forward(batch.input);
        }
        const torch::Tensor ce_loss = F::cross_entropy(
            ResizeBilinear(student.logits, h, w), batch.labels,
            F::CrossEntropyFuncOptions().ignore_index(kIgnoreLabel));
        torch::Tensor loss = ce_loss;
        const double ce = ce_loss.item<double>();
        if (ssa.total.defined()) loss = loss + ssa.total;
        DistillLosses distill;
        if (trainee.teacher) {
          DecoderOutputs teacher;
          {
            torch::NoGradGuard no_grad;
            teacher = trainee.teacher->forward_with_features(TeacherInput(
                batch.input, options.student.preprocess,
                options.teacher.preprocess, trainee.teacher->input_multiple));
            // On the student's grid when the inputs differ in size.
            teacher.features =
                ResizeBilinear(teacher.features, student.features.size(2),
                               student.features.size(3));
            // The distiller compares logits on the features' grid.
            teacher.logits =
                ResizeBilinear(teacher.logits, student.features.size(2),
                               student.features.size(3));
          }
          distill = trainee.distiller->forward(student.features, student.logits,
                                               teacher.features, teacher.logits,
                                               batch.labels);
          loss = loss + distill.total;
        }
        // On the steps whose progress line is printed (below).
        if (options.report_gradients && a == 0 &&
            ((step + 1) % options.log_every == 0 ||
             step + 1 == options.steps)) {
          gradient_line =
              GradientReport(LossTerms(options, ce_loss, distill, ssa),
                             ServedParameters(*trainee.student.module));
        }
        const double total = loss.item<double>();
        if (!std::isfinite(total)) {
          return absl::InternalError(
              absl::StrCat("the loss became ", total, " at step ", step,
                           "; lower --lr or the distillation weights"));
        }
        (loss / static_cast<double>(options.accumulation)).backward();
        meter.Add(total, ce, ScalarOr0(distill.pixel_relation),
                  ScalarOr0(distill.class_relation),
                  ScalarOr0(distill.logits_kl));
        if (trainee.ssa_training) meter.AddSsa(ssa);
        interval_images += options.batch_size;
      }
      trainee.optimizer->step();
      ++step;

      const bool last = step == options.steps;
      if (options.progress_tty || step % options.log_every == 0 || last) {
        const double seconds =
            std::chrono::duration<double>(Clock::now() - interval_start)
                .count();
        const std::string line =
            ProgressLine(options, step, meter, lr,
                         interval_images / std::max(seconds, 1e-9));
        if (options.progress_tty) {
          log << "\r" << line << "\033[K" << (last ? "\n" : "") << std::flush;
        } else {
          log << line << "\n" << std::flush;
        }
        if (!gradient_line.empty()) {
          log << (options.progress_tty && !last ? "\n" : "") << gradient_line
              << "\n";
          gradient_line.clear();
        }
        if (step % options.log_every == 0 || last) {
          meter = LossMeter();
          interval_start = Clock::now();
          interval_images = 0;
        }
      }
      const bool stop = step == options.stop_after_step;
      if (!options.checkpoint_dir.empty() &&
          ((options.checkpoint_every > 0 &&
            step % options.checkpoint_every == 0) ||
           last || stop)) {
        SEGSERVE_RETURN_IF_ERROR(Checkpoint(options, trainee, step));
      }
      if (stop) return absl::OkStatus();
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training failed at step ", step,
                                            ": ", ExceptionMessage(e)));
  }
  if (options.output.empty()) return absl::OkStatus();
  std::error_code error;
  const fs::path parent = fs::path(options.output).parent_path();
  if (!parent.empty()) fs::create_directories(parent, error);
  return SaveWeights(*trainee.student.module, options.output);
}

absl::StatusOr<ConfusionMatrix> Evaluate(const NetworkSpec& spec,
                                         const LabeledImageSource& source,
                                         int64_t first, int64_t count,
                                         int threads) {
  // The server's own model loader and inference, so scores are the
  // server's.
  SetTorchThreads(threads);
  TorchModelOptions model_options;
  model_options.architecture = spec.architecture;
  model_options.num_classes = spec.num_classes;
  model_options.weights_path = spec.weights;
  model_options.input_height = spec.preprocess.height;
  model_options.input_width = spec.preprocess.width;
  model_options.mean = spec.preprocess.mean;
  model_options.std = spec.preprocess.std;
  SEGSERVE_ASSIGN_OR_RETURN(std::unique_ptr<SegmentationModel> model,
                            LoadTorchModel(model_options));
  ConfusionMatrix confusion(spec.num_classes);
  const PreprocessOptions& pre = spec.preprocess;
  std::vector<uint8_t> input(3 * static_cast<size_t>(pre.height) * pre.width);
  for (int64_t i = first; i < first + count; ++i) {
    SEGSERVE_ASSIGN_OR_RETURN(LabeledImage image, source.Get(i));
    const ContentRegion region = PreprocessBytes(image.rgb, pre, input.data());
    const ModelInput inputs[] = {{input.data(), region}};
    SEGSERVE_ASSIGN_OR_RETURN(std::vector<InferenceOutput> outputs,
                              model->Infer(inputs, {}));
    const cv::Mat predicted = MapToImageSize(
        outputs.front().labels, region, image.labels.cols, image.labels.rows);
    absl::Status added = confusion.Add(predicted, image.labels);
    if (!added.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(image.name, ": ", added.message()));
    }
  }
  return confusion;
}

}  // namespace segserve
