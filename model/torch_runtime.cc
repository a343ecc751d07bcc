#include "model/torch_runtime.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace segserve {

void SetTorchThreads(int intra_op_threads) {
  if (intra_op_threads > 0) at::set_num_threads(intra_op_threads);
}

std::string TorchRuntimeSummary() {
  return absl::StrCat(
      "LibTorch ", TORCH_VERSION, ", intra-op threads ", at::get_num_threads(),
      ", CUDA devices ",
      torch::cuda::is_available() ? torch::cuda::device_count() : 0);
}

}  // namespace segserve
