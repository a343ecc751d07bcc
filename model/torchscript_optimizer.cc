#include "model/torchscript_optimizer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "model/checkpoint.h"

namespace segserve {
namespace {

using Level = TorchScriptOptimization;

// Fixed, so that every load checks the same batches.
constexpr uint64_t kProbeSeed = 20261202;

struct ProbeBatch {
  torch::Tensor input;
  torch::Tensor logits;  // Of the saved module.
};

// The largest probe batch: a max_batch_size of hundreds would need
// gigabytes for the check alone.
constexpr int64_t kMaxProbeBatch = 8;

// The probe batches' sizes: 1 and the largest the model serves, up to
// kMaxProbeBatch.
std::vector<int64_t> ProbeSizes(int64_t max_batch_size) {
  std::vector<int64_t> sizes = {1};
  const int64_t largest = std::min(max_batch_size, kMaxProbeBatch);
  if (largest > 1) sizes.push_back(largest);
  return sizes;
}

bool TakesChannelsLast(Level level) {
  return level == Level::kFreezeChannelsLast;
}

torch::Tensor InputFor(const torch::Tensor& input, Level level) {
  return TakesChannelsLast(level)
             ? input.contiguous(torch::MemoryFormat::ChannelsLast)
             : input;
}

// The module's logits for `input`, run twice: the profiling executor
// records shapes on its first run and optimizes on the second; the second
// run's output is the one served afterwards. May throw.
absl::StatusOr<torch::Tensor> RunTwice(torch::jit::Module& module,
                                       const torch::Tensor& input) {
  c10::InferenceMode inference_mode;
  module.forward({input});
  return TorchScriptLogits(module.forward({input}));
}

// Seconds of one more run on `input`. May throw.
double TimeOneRun(torch::jit::Module& module, const torch::Tensor& input) {
  c10::InferenceMode inference_mode;
  const auto start = std::chrono::steady_clock::now();
  module.forward({input});
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

absl::Status CheckLogitsShape(const torch::Tensor& logits, int64_t batch,
                              int64_t num_classes) {
  if (logits.dim() != 4 || logits.size(0) != batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "on a batch of ", batch, " the module returned logits of shape ",
        c10::str(logits.sizes()), "; expected ", batch,
        " x classes x height x width"));
  }
  if (num_classes > 0 && logits.size(1) != num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the module produced ", logits.size(1),
                     " classes, configured for ", num_classes));
  }
  return absl::OkStatus();
}

// The saved module's logits on the probe batches; refuses a module whose
// output the server could not use.
absl::StatusOr<std::vector<ProbeBatch>> RunSaved(
    torch::jit::Module& saved, const TorchScriptProbe& probe) {
  at::Generator generator = at::detail::createCPUGenerator(kProbeSeed);
  std::vector<ProbeBatch> batches;
  for (int64_t size : ProbeSizes(probe.max_batch_size)) {
    ProbeBatch batch;
    batch.input = torch::randn({size, 3, probe.height, probe.width}, generator)
                      .to(probe.device, probe.dtype);
    absl::StatusOr<torch::Tensor> logits = RunTwice(saved, batch.input);
    if (!logits.ok()) {
      return absl::InvalidArgumentError(logits.status().message());
    }
    SEGSERVE_RETURN_IF_ERROR(
        CheckLogitsShape(*logits, size, probe.num_classes));
    // A copy: later runs may reuse the output's storage.
    batch.logits = logits->to(torch::kFloat).clone();
    batches.push_back(std::move(batch));
  }
  return batches;
}

struct Comparison {
  bool matches = false;
  std::string difference;  // Why not, or how close.
};

Comparison Compare(torch::jit::Module& candidate, Level level,
                   const std::vector<ProbeBatch>& batches, double tolerance) {
  double worst = 0;
  std::vector<std::string> sizes;
  for (const ProbeBatch& batch : batches) {
    const int64_t size = batch.input.size(0);
    sizes.push_back(absl::StrCat(size));
    absl::StatusOr<torch::Tensor> logits =
        RunTwice(candidate, InputFor(batch.input, level));
    if (!logits.ok()) return {false, std::string(logits.status().message())};
    if (!logits->sizes().equals(batch.logits.sizes())) {
      return {false, absl::StrCat("on a batch of ", size,
                                  " it returns logits of shape ",
                                  c10::str(logits->sizes()), ", not ",
                                  c10::str(batch.logits.sizes()))};
    }
    const double range =
        std::max(batch.logits.abs().max().item<double>(), 1e-6);
    const double difference =
        (logits->to(torch::kFloat) - batch.logits).abs().max().item<double>();
    const double relative = difference / range;
    if (!(relative <= tolerance)) {  // Also catches NaN.
      return {false,
              absl::StrFormat("on a batch of %d its logits differ from the "
                              "saved module's by up to %.3g (%.2g of their "
                              "largest magnitude %.3g; tolerance %.0e)",
                              size, difference, relative, range, tolerance)};
    }
    worst = std::max(worst, relative);
  }
  return {true, absl::StrFormat("within %.1e of the saved module's logits at "
                                "batch %s",
                                worst, absl::StrJoin(sizes, " and "))};
}

// 4-D floating weights and buffers (convolutions') to channels-last.
void ToChannelsLast(torch::jit::Module& module) {
  c10::NoGradGuard no_grad;
  auto convert = [](torch::Tensor tensor) {
    if (tensor.dim() == 4 && tensor.is_floating_point()) {
      tensor.set_data(tensor.contiguous(torch::MemoryFormat::ChannelsLast));
    }
  };
  for (const torch::Tensor& parameter : module.parameters()) convert(parameter);
  for (const torch::Tensor& buffer : module.buffers()) convert(buffer);
}

// Builds the rewritten module for `level`. May throw.
torch::jit::Module Rewrite(const torch::jit::Module& saved, Level level) {
  if (level == Level::kFreezeChannelsLast) {
    torch::jit::Module copy = saved.clone();  // Copies the tensors too.
    ToChannelsLast(copy);
    return torch::jit::freeze(copy);
  }
  torch::jit::Module frozen = torch::jit::freeze(saved);
  if (level == Level::kFreeze) return frozen;
  return torch::jit::optimize_for_inference(frozen);
}

std::string Milliseconds(double seconds) {
  return absl::StrFormat("%.1f ms", seconds * 1e3);
}

}  // namespace

const char* TorchScriptOptimizationName(TorchScriptOptimization level) {
  switch (level) {
    case Level::kAuto:
      return "AUTO";
    case Level::kNone:
      return "NONE";
    case Level::kFreeze:
      return "FREEZE";
    case Level::kFreezeChannelsLast:
      return "FREEZE_CHANNELS_LAST";
    case Level::kOptimizeForInference:
      return "OPTIMIZE_FOR_INFERENCE";
  }
  return "?";
}

absl::StatusOr<torch::Tensor> TorchScriptLogits(const c10::IValue& output) {
  if (output.isTensor()) return output.toTensor();
  if (output.isTuple()) {
    const auto& elements = output.toTupleRef().elements();
    if (!elements.empty() && elements[0].isTensor()) {
      return elements[0].toTensor();
    }
  } else if (output.isList()) {
    const c10::List<c10::IValue> list = output.toList();
    if (!list.empty() && list.get(0).isTensor()) return list.get(0).toTensor();
  } else if (output.isGenericDict()) {
    for (const auto& entry : output.toGenericDict()) {
      if (entry.key().isString() && entry.key().toStringRef() == "out" &&
          entry.value().isTensor()) {
        return entry.value().toTensor();
      }
    }
  }
  return absl::InternalError(absl::StrCat(
      "the TorchScript module returned ", output.tagKind(),
      "; expected a logits tensor, a tuple or list starting with one, or a "
      "dict with \"out\""));
}

absl::StatusOr<PreparedTorchScript> PrepareTorchScript(
    torch::jit::Module saved, TorchScriptOptimization requested,
    const TorchScriptProbe& probe) {
  return PrepareTorchScript(std::move(saved), requested, probe, Rewrite);
}

absl::StatusOr<PreparedTorchScript> PrepareTorchScript(
    torch::jit::Module saved, TorchScriptOptimization requested,
    const TorchScriptProbe& probe, const TorchScriptRewriter& rewrite) {
  saved.eval();
  std::vector<ProbeBatch> batches;
  try {
    SEGSERVE_ASSIGN_OR_RETURN(batches, RunSaved(saved, probe));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the module fails on a batch of the configured input "
                     "size: ",
                     ExceptionMessage(e)));
  }
  const bool timed = requested == Level::kAuto;
  const torch::Tensor& largest = batches.back().input;
  struct Candidate {
    Level level;
    torch::jit::Module module;
    std::string difference;
    double seconds = 0;
  };
  std::vector<Candidate> matching;
  if (timed) {
    try {
      matching.push_back(
          {Level::kNone, saved, "as saved", TimeOneRun(saved, largest)});
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the module fails on its third run: ", ExceptionMessage(e)));
    }
  }
  std::vector<Level> levels;
  if (requested == Level::kAuto) {
    levels = {Level::kOptimizeForInference, Level::kFreezeChannelsLast,
              Level::kFreeze};
  } else if (requested != Level::kNone) {
    levels = {requested};
  }
  const double tolerance = probe.dtype == torch::kFloat ? 1e-4 : 1e-2;
  std::vector<std::string> refused;
  for (Level level : levels) {
    const char* name = TorchScriptOptimizationName(level);
    Comparison comparison;
    std::optional<torch::jit::Module> rewritten;
    double seconds = 0;
    try {
      rewritten = rewrite(saved, level);
      comparison = Compare(*rewritten, level, batches, tolerance);
      if (comparison.matches && timed) {
        seconds = TimeOneRun(*rewritten, InputFor(largest, level));
      }
    } catch (const std::exception& e) {
      comparison = {false, absl::StrCat("it fails: ", ExceptionMessage(e))};
    }
    if (comparison.matches) {
      matching.push_back({level, *std::move(rewritten),
                          std::move(comparison.difference), seconds});
    } else if (requested != Level::kAuto) {
      return absl::FailedPreconditionError(
          absl::StrCat("torchscript.optimization ", name,
                       " cannot be used: ", comparison.difference,
                       "; use AUTO (the fastest level that matches) or NONE"));
    } else {
      refused.push_back(absl::StrCat(name, ", ", comparison.difference));
    }
  }
  if (matching.empty()) {  // NONE asked for.
    return PreparedTorchScript{std::move(saved), Level::kNone, false,
                               "NONE (the module as saved)"};
  }
  auto best = std::min_element(matching.begin(), matching.end(),
                               [](const Candidate& a, const Candidate& b) {
                                 return a.seconds < b.seconds;
                               });
  std::string summary = absl::StrCat(TorchScriptOptimizationName(best->level),
                                     " (", best->difference, ")");
  if (timed) {
    std::vector<std::string> times;
    for (const Candidate& candidate : matching) {
      times.push_back(absl::StrCat(TorchScriptOptimizationName(candidate.level),
                                   " ", Milliseconds(candidate.seconds)));
    }
    absl::StrAppend(&summary, "; timed at batch ", largest.size(0), ": ",
                    absl::StrJoin(times, ", "));
  }
  if (!refused.empty()) {
    absl::StrAppend(&summary, "; not used: ", absl::StrJoin(refused, "; "));
  }
  const Level level = best->level;
  return PreparedTorchScript{std::move(best->module), level,
                             TakesChannelsLast(level), std::move(summary)};
}

}  // namespace segserve
