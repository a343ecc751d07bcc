#ifndef SEGSERVE_MODEL_TORCHSCRIPT_OPTIMIZER_H_
#define SEGSERVE_MODEL_TORCHSCRIPT_OPTIMIZER_H_

// Includes torch: for model/*.cc, benchmarks and tests only.

#include <torch/script.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace segserve {

// How far a loaded TorchScript module is rewritten for inference.
enum class TorchScriptOptimization {
  // Of the levels below whose output matches the module as saved, the
  // fastest, timed at load.
  kAuto,
  kNone,    // The module as saved.
  kFreeze,  // torch.jit.freeze: attributes inlined as constants,
            // BatchNorm and constant add/mul folded into convolutions.
  // kFreeze with the 4-D weights and every input batch in channels-last
  // (NHWC) layout, in which oneDNN's convolutions need no reordering.
  kFreezeChannelsLast,
  // freeze, then torch.jit.optimize_for_inference: on the CPU, convolutions
  // and their elementwise neighbours rewritten to oneDNN ops on
  // prepacked weights in oneDNN's blocked layout.
  kOptimizeForInference,
};

const char* TorchScriptOptimizationName(TorchScriptOptimization level);

// The shape of the batches the module serves, for the load-time check.
struct TorchScriptProbe {
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
  int64_t height = 0;
  int64_t width = 0;
  int64_t max_batch_size = 1;
  int64_t num_classes = 0;  // 0: any.
};

struct PreparedTorchScript {
  torch::jit::Module module;
  TorchScriptOptimization applied = TorchScriptOptimization::kNone;
  // Whether input batches go in as channels-last (kFreezeChannelsLast).
  bool channels_last_input = false;
  // One line for the log: what was applied, and why not more.
  std::string summary;
};

// The logits of a module's output: a tensor, the first element of a tuple or
// list, or the "out" entry of a dict (torchvision-style segmentation models).
absl::StatusOr<torch::Tensor> TorchScriptLogits(const c10::IValue& output);

// Runs `saved` (in eval mode, on the probe's device and dtype) on seeded
// random batches of 1 and max_batch_size (at most 8), which also warms up its
// profiling executor, and refuses it (INVALID_ARGUMENT) when its output is not
// N x C x h x w logits of num_classes classes. Then applies `requested`; each
// rewritten module must give the saved module's logits on the same batches
// within a tolerance (relative to the logits' largest magnitude: 1e-4 in
// FP32, 1e-2 in FP16/BF16), or it is not used: kAuto then tries the next
// lower level, an explicit level fails the load (FAILED_PRECONDITION, with
// the difference found). A rewrite that throws counts as a mismatch.
// kAuto times one more run at the largest probe batch of the saved module
// and of each matching rewrite, and keeps the fastest.
absl::StatusOr<PreparedTorchScript> PrepareTorchScript(
    torch::jit::Module saved, TorchScriptOptimization requested,
    const TorchScriptProbe& probe);

// The rewrite of a level (freeze, optimize_for_inference); may throw. The
// seam for tests of the check.
using TorchScriptRewriter = std::function<torch::jit::Module(
    const torch::jit::Module& saved, TorchScriptOptimization level)>;
absl::StatusOr<PreparedTorchScript> PrepareTorchScript(
    torch::jit::Module saved, TorchScriptOptimization requested,
    const TorchScriptProbe& probe, const TorchScriptRewriter& rewrite);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_TORCHSCRIPT_OPTIMIZER_H_
