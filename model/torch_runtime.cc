#include "model/torch_runtime.h"

#include <torch/torch.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"

namespace segserve {

void SetTorchThreads(int intra_op_threads) {
  // Always set explicitly: LibTorch's own default depends on the OpenMP
  // runtime and environment variables.
  const int threads = intra_op_threads > 0
                          ? intra_op_threads
                          : std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(threads);
}

std::string TorchRuntimeSummary() {
  return absl::StrCat(
      "LibTorch ", TORCH_VERSION, ", intra-op threads ", at::get_num_threads(),
      ", CUDA devices ",
      torch::cuda::is_available() ? torch::cuda::device_count() : 0);
}

}  // namespace segserve
