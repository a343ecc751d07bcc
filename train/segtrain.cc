// segtrain: trains (or evaluates) the builtin model of a model directory on
// the synthetic scenes or on a folder dataset, optionally distilled from a
// trained teacher. Usage and the data format: train/README.md.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "config/model_config.h"
#include "config/repository_layout.h"
#include "datasets/dataset.h"
#include "datasets/scene.h"
#include "datasets/seeds.h"
#include "model/architectures.h"
#include "model/cpu_allocator.h"
#include "train/trainer.h"

ABSL_FLAG(std::string, model_dir, "",
          "model directory whose config.pbtxt names the architecture, classes "
          "and input (required)");
ABSL_FLAG(std::string, data, "scenes",
          "'scenes' (synthetic, seeds from 1000000) or a dataset folder "
          "(classes.txt, images/, masks/)");
ABSL_FLAG(uint64_t, scene_offset, 0,
          "with --data scenes: train on scenes from 1000000 + this (a later "
          "phase sees new scenes)");
ABSL_FLAG(std::string, output, "",
          "where the trained weights go (default MODEL_DIR/1/model.pt)");
ABSL_FLAG(int64_t, steps, 1000, "optimizer steps");
ABSL_FLAG(int, batch_size, 8, "images per batch");
ABSL_FLAG(int, accumulation, 1, "batches per optimizer step");
ABSL_FLAG(double, lr, 2e-3, "peak learning rate (AdamW)");
ABSL_FLAG(double, weight_decay, 0.01, "AdamW weight decay");
ABSL_FLAG(int64_t, warmup_steps, 100, "linear warm-up steps");
ABSL_FLAG(double, min_scale, 0.75, "smallest random scale");
ABSL_FLAG(double, max_scale, 1.25, "largest random scale");
ABSL_FLAG(double, letterbox_share, 0,
          "the share of samples resized as LETTERBOX whatever the model's "
          "resize mode, 0..1: content beside padding, as a LETTERBOX config "
          "of the same weights serves it");
ABSL_FLAG(int, crop, 0,
          "train on random crops of this side, at the server's pixel scale "
          "(0: whole inputs); CGRSeg needs a multiple of 32");
ABSL_FLAG(bool, flip, true, "random horizontal and vertical flips");
ABSL_FLAG(bool, photometric, false,
          "colour jitter, blur, noise over every pixel and JPEG re-encoding "
          "of each crop (train/README.md)");
ABSL_FLAG(double, noisy_scenes, 0,
          "--data scenes: the share of training scenes drawn as the noisy "
          "variant (noise over the objects too), 0..1");
ABSL_FLAG(uint64_t, seed, 0, "initialisation, sample order, augmentation");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads");
ABSL_FLAG(std::string, init, "", "start from these weights (a state dict)");
ABSL_FLAG(std::string, init_backbone, "",
          "start the backbone from the backbone part of these weights (a "
          "state dict of a network with the same backbone; the head starts "
          "fresh)");
ABSL_FLAG(bool, freeze_backbone_norm, false,
          "keep EfficientFormerV2's BatchNorm statistics frozen, as the "
          "official recipe does for ImageNet-initialised weights (from "
          "scratch they must update)");
ABSL_FLAG(bool, ssa_losses, true,
          "a model with classifier: SSA trains with its paper's losses (the "
          "ground-truth branch distilled online into the adapted one); "
          "false: cross-entropy on its output only");
ABSL_FLAG(bool, report_gradients, false,
          "with each progress line, each loss term's gradient norm on the "
          "student and its cosine with the cross-entropy's (an extra "
          "backward pass per term on those steps)");
ABSL_FLAG(std::string, checkpoint_dir, "",
          "where checkpoints go (model.pt + trainer_state.pt)");
ABSL_FLAG(int64_t, checkpoint_every, 200, "steps between checkpoints");
ABSL_FLAG(std::string, resume, "",
          "a checkpoint_dir to continue from (same options)");
ABSL_FLAG(int64_t, stop_after_step, 0,
          "stop after this step, checkpointed (0: train all --steps); "
          "continue later with --resume");
ABSL_FLAG(std::string, teacher, "",
          "a trained teacher's model directory (or its config.pbtxt): "
          "distil from it");
ABSL_FLAG(double, pixel_relation_weight, 0,
          "weight of the pixel-wise relation loss (DRKD)");
ABSL_FLAG(double, class_relation_weight, 0,
          "weight of the class-wise relation loss (DRKD)");
ABSL_FLAG(double, kl_weight, 0, "weight of the KL loss on the logits");
ABSL_FLAG(double, temperature, 1, "softmax temperature of the KL loss");
ABSL_FLAG(int64_t, eval_images, 100, "images scored after training (0: none)");
ABSL_FLAG(std::string, eval_data, "scenes",
          "'scenes' or a dataset folder to score on");
ABSL_FLAG(uint64_t, eval_first, segserve::kValidationSeedBase,
          "first scene seed (or folder index) scored");
ABSL_FLAG(bool, eval_noise_over_objects, false,
          "--eval_data scenes: score the noisy variant of the scenes");
ABSL_FLAG(bool, evaluate_only, false,
          "only score the weights (--weights, default MODEL_DIR/1/model.pt)");
ABSL_FLAG(std::string, weights, "", "weights to score with --evaluate_only");

namespace segserve {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<NetworkSpec> SpecFromModelDir(std::string dir) {
  if (fs::path(dir).filename() == kModelConfigFile) {
    dir = fs::path(dir).parent_path().string();
  }
  SEGSERVE_ASSIGN_OR_RETURN(v1::ModelConfig config, LoadModelConfig(dir));
  if (config.platform() != v1::ModelConfig::BUILTIN) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir,
        ": platform must be BUILTIN to train; TorchScript models are "
        "trained elsewhere"));
  }
  SEGSERVE_ASSIGN_OR_RETURN(
      std::string name,
      BuiltinArchitectureName(config.architecture(),
                              config.classifier() == v1::ModelConfig::SSA));
  NetworkSpec spec;
  spec.architecture = name;
  spec.num_classes = static_cast<int>(config.num_classes());
  spec.preprocess = PreprocessOptionsFromConfig(config);
  spec.weights = ModelWeightsPath(dir, 1);
  return spec;
}

absl::StatusOr<std::unique_ptr<LabeledImageSource>> OpenSource(
    const std::string& data, uint64_t seed_base, double noisy_share = 0) {
  if (data == "scenes") return MakeSceneSource(seed_base, noisy_share);
  return OpenFolderDataset(data);
}

absl::Status CheckClasses(const LabeledImageSource& source,
                          const NetworkSpec& spec) {
  if (static_cast<int>(source.class_names().size()) != spec.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the data has ", source.class_names().size(),
        " classes but the model's config says num_classes ", spec.num_classes));
  }
  return absl::OkStatus();
}

// A flag that is a share of the samples.
absl::Status CheckShare(absl::string_view flag, double share) {
  if (share >= 0 && share <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " is ", share, "; allowed: 0..1"));
}

absl::Status Run() {
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  if (model_dir.empty()) {
    return absl::InvalidArgumentError("--model_dir is required");
  }
  SEGSERVE_ASSIGN_OR_RETURN(NetworkSpec student, SpecFromModelDir(model_dir));
  const std::string default_weights = student.weights;
  const int threads = absl::GetFlag(FLAGS_threads);
  // Training allocates the same large activation buffers every step.
  InstallCachingCpuAllocator();

  const double noisy_share = absl::GetFlag(FLAGS_noisy_scenes);
  const double letterbox_share = absl::GetFlag(FLAGS_letterbox_share);
  for (absl::Status share : {CheckShare("noisy_scenes", noisy_share),
                             CheckShare("letterbox_share", letterbox_share)}) {
    SEGSERVE_RETURN_IF_ERROR(share);
  }
  if (!absl::GetFlag(FLAGS_evaluate_only)) {
    SEGSERVE_ASSIGN_OR_RETURN(
        std::unique_ptr<LabeledImageSource> data,
        OpenSource(absl::GetFlag(FLAGS_data),
                   kTrainingSeedBase + absl::GetFlag(FLAGS_scene_offset),
                   noisy_share));
    SEGSERVE_RETURN_IF_ERROR(CheckClasses(*data, student));

    TrainerOptions options;
    options.student = student;
    options.student.weights = absl::GetFlag(FLAGS_init);
    options.steps = absl::GetFlag(FLAGS_steps);
    options.batch_size = absl::GetFlag(FLAGS_batch_size);
    options.accumulation = absl::GetFlag(FLAGS_accumulation);
    options.learning_rate = absl::GetFlag(FLAGS_lr);
    options.weight_decay = absl::GetFlag(FLAGS_weight_decay);
    options.warmup_steps = absl::GetFlag(FLAGS_warmup_steps);
    options.augment.min_scale = absl::GetFlag(FLAGS_min_scale);
    options.augment.max_scale = absl::GetFlag(FLAGS_max_scale);
    options.augment.letterbox_chance = letterbox_share;
    options.augment.crop_width = absl::GetFlag(FLAGS_crop);
    options.augment.crop_height = absl::GetFlag(FLAGS_crop);
    options.augment.horizontal_flip = absl::GetFlag(FLAGS_flip);
    options.augment.vertical_flip = absl::GetFlag(FLAGS_flip);
    options.augment.photometric = absl::GetFlag(FLAGS_photometric);
    options.seed = absl::GetFlag(FLAGS_seed);
    options.threads = threads;
    options.freeze_backbone_norm = absl::GetFlag(FLAGS_freeze_backbone_norm);
    options.ssa_losses = absl::GetFlag(FLAGS_ssa_losses);
    options.init_backbone = absl::GetFlag(FLAGS_init_backbone);
    options.report_gradients = absl::GetFlag(FLAGS_report_gradients);
    options.output = absl::GetFlag(FLAGS_output).empty()
                         ? default_weights
                         : absl::GetFlag(FLAGS_output);
    options.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
    options.checkpoint_every = absl::GetFlag(FLAGS_checkpoint_every);
    options.resume = absl::GetFlag(FLAGS_resume);
    options.stop_after_step = absl::GetFlag(FLAGS_stop_after_step);
    if (!absl::GetFlag(FLAGS_teacher).empty()) {
      SEGSERVE_ASSIGN_OR_RETURN(options.teacher,
                                SpecFromModelDir(absl::GetFlag(FLAGS_teacher)));
      options.pixel_relation_weight =
          absl::GetFlag(FLAGS_pixel_relation_weight);
      options.class_relation_weight =
          absl::GetFlag(FLAGS_class_relation_weight);
      options.logits_kl_weight = absl::GetFlag(FLAGS_kl_weight);
      options.temperature = absl::GetFlag(FLAGS_temperature);
    }
    options.progress_tty = isatty(STDERR_FILENO) == 1;
    std::cerr << "training " << options.student.architecture << " ("
              << options.student.num_classes << " classes, "
              << options.student.preprocess.width << "x"
              << options.student.preprocess.height << ") for " << options.steps
              << " steps of " << options.batch_size << " x "
              << options.accumulation << " images"
              << (options.teacher.architecture.empty()
                      ? ""
                      : absl::StrCat(", distilled from ",
                                     options.teacher.architecture))
              << "\n";
    SEGSERVE_RETURN_IF_ERROR(Train(options, *data, std::cerr));
    if (options.stop_after_step > 0 &&
        options.stop_after_step < options.steps) {
      std::cerr << "stopped after step " << options.stop_after_step
                << "; continue with --resume " << options.checkpoint_dir
                << "\n";
      return absl::OkStatus();
    }
    std::cerr << "wrote " << options.output << "\n";
    student.weights = options.output;
  } else if (!absl::GetFlag(FLAGS_weights).empty()) {
    student.weights = absl::GetFlag(FLAGS_weights);
  }

  const int64_t eval_images = absl::GetFlag(FLAGS_eval_images);
  if (eval_images <= 0) return absl::OkStatus();
  SEGSERVE_ASSIGN_OR_RETURN(
      std::unique_ptr<LabeledImageSource> eval,
      OpenSource(absl::GetFlag(FLAGS_eval_data), 0,
                 absl::GetFlag(FLAGS_eval_noise_over_objects) ? 1.0 : 0.0));
  SEGSERVE_RETURN_IF_ERROR(CheckClasses(*eval, student));
  const int64_t first = static_cast<int64_t>(absl::GetFlag(FLAGS_eval_first));
  SEGSERVE_ASSIGN_OR_RETURN(
      ConfusionMatrix scores,
      Evaluate(student, *eval, first, eval_images, threads));
  std::cout << "evaluation of " << student.weights << " on " << eval_images
            << " images from " << absl::GetFlag(FLAGS_eval_data) << " #"
            << first << ":\n"
            << scores.Report(eval->class_names());
  return absl::OkStatus();
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "trains or evaluates a builtin segmentation model.\n"
      "  segtrain --model_dir model_repository/scenes-sgcpnet --steps 3000\n"
      "  segtrain --model_dir DIR --teacher model_repository/scenes-cgrseg-t "
      "--pixel_relation_weight 1 --class_relation_weight 1 --kl_weight 1\n"
      "  segtrain --model_dir DIR --evaluate_only --eval_first 0 "
      "--eval_images 200");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = segserve::Run();
  if (!status.ok()) {
    std::cerr << "segtrain: " << status << "\n";
    return 1;
  }
  return 0;
}
