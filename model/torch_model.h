#ifndef SEGSERVE_MODEL_TORCH_MODEL_H_
#define SEGSERVE_MODEL_TORCH_MODEL_H_

#include <array>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/preprocess_options.h"
#include "model/segmentation_model.h"

namespace segserve {

// Loads real LibTorch models. This header stays free of torch includes so the
// server does not pay for them at compile time.
struct TorchModelOptions {
  enum class Platform { kBuiltin, kTorchScript };
  enum class Precision { kFp32, kFp16, kBf16 };
  // TorchScript only; model/torchscript_optimizer.h says what each does.
  enum class TorchScriptOptimization {
    kAuto,
    kNone,
    kFreeze,
    kFreezeChannelsLast,
    kOptimizeForInference
  };

  // The head's classifier for builtin CGRSeg architectures: kDefault and
  // kDpg are the architecture's own (DPG), kSsa the SSA classifier (the
  // checkpoint must then be an SSA one). kSsa with sgcpnet is refused.
  enum class Classifier { kDefault, kDpg, kSsa };

  Platform platform = Platform::kBuiltin;
  // Builtin only: sgcpnet, cgrseg_t, cgrseg_b, cgrseg_l (or cgrseg_*_ssa,
  // the same as classifier kSsa).
  std::string architecture = "sgcpnet";
  Classifier classifier = Classifier::kDefault;  // Builtin only.
  // Builtin: the classifier's size (1..65536). TorchScript: the class count
  // the module must produce (checked on every batch); 0 accepts any.
  int num_classes = 19;
  // model.pt, told apart by content. Builtin: a torch.save'd flat
  // {name: tensor} dict (plain dict or model.state_dict()), loaded strictly
  // by name, or a TorchScript archive whose parameters and buffers are taken
  // by name the same way. TorchScript: a torch.jit.save archive whose
  // forward takes N x 3 x H x W floats and returns N x C x h x w logits (a
  // tensor, a tuple/list starting with one, or a dict with "out").
  std::string weights_path;
  int input_height = 512;
  int input_width = 512;
  // How Infer normalizes its 8-bit inputs: (pixel - mean) / std, RGB.
  std::array<float, 3> mean = kImageNetMean;
  std::array<float, 3> std = kImageNetStd;
  std::string device = "cpu";              // "cpu" or "cuda:N".
  Precision precision = Precision::kFp32;  // FP16/BF16 are CUDA only.
  // TorchScript only: the rewrite applied at load, checked against the
  // module as saved on batches of 1 and max_batch_size (kAuto: the fastest
  // that matches).
  TorchScriptOptimization torchscript_optimization =
      TorchScriptOptimization::kAuto;
  int max_batch_size = 1;
  // On the CPU, unless logits are asked for: labels and confidence computed
  // from the low-resolution logits in one pass (model/upsampled_argmax.h)
  // rather than from upsampled logits. False: the unfused reference path.
  bool fused_mask_upsampling = true;
};

// Loads the model and moves it to its device in eval mode. Errors name the
// file and what was wrong: NOT_FOUND (no such file), INVALID_ARGUMENT
// (missing/unexpected/mis-shaped keys, bad format, unknown architecture,
// FP16/BF16 on the CPU, bad device name, a TorchScript module whose output on
// a batch of the input size is not logits of num_classes classes),
// FAILED_PRECONDITION (CUDA requested but unavailable, an explicit
// TorchScript optimization that changes the module's output). Builtin
// networks are rewritten for inference and checked against the network as
// loaded (PrepareCheckedForInference); one whose rewrite fails the check
// serves unrewritten. Infer() resizes the logits bilinearly (align_corners
// false) to input_height x input_width, takes the argmax on the device
// (on the CPU fused into one pass, fused_mask_upsampling) and returns the
// confidence as round(255 * winning softmax probability). It never changes
// LibTorch's thread count.
absl::StatusOr<std::unique_ptr<SegmentationModel>> LoadTorchModel(
    const TorchModelOptions& options);

// Whether this LibTorch build can use CUDA devices, and how many.
int CudaDeviceCount();

}  // namespace segserve

#endif  // SEGSERVE_MODEL_TORCH_MODEL_H_
