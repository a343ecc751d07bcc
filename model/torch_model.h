#ifndef SEGSERVE_MODEL_TORCH_MODEL_H_
#define SEGSERVE_MODEL_TORCH_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/segmentation_model.h"

namespace segserve {

// Loads real LibTorch models. This header stays free of torch includes so the
// server does not pay for them at compile time.
struct TorchModelOptions {
  enum class Platform { kBuiltin, kTorchScript };
  enum class Precision { kFp32, kFp16, kBf16 };

  Platform platform = Platform::kBuiltin;
  std::string architecture = "sgcpnet";  // Builtin only.
  int num_classes = 19;
  std::string weights_path;  // model.pt: a state dict or a TorchScript file.
  int input_height = 512;
  int input_width = 512;
  std::string device = "cpu";  // "cpu" or "cuda:N".
  Precision precision = Precision::kFp32;  // FP16/BF16 are CUDA only.
};

// Loads the model and moves it to its device in eval mode. Errors name the
// file and what was wrong (missing/unexpected/mis-shaped keys, bad format,
// unknown architecture, CUDA requested but unavailable).
absl::StatusOr<std::unique_ptr<SegmentationModel>> LoadTorchModel(
    const TorchModelOptions& options);

// Whether this LibTorch build can use CUDA devices, and how many.
int CudaDeviceCount();

}  // namespace segserve

#endif  // SEGSERVE_MODEL_TORCH_MODEL_H_
