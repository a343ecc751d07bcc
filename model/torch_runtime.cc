#include "model/torch_runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/cpu_cores.h"

namespace segserve {

namespace {
std::atomic<int> usable_cores{0};
}  // namespace

void SetTorchThreads(int intra_op_threads, int cpu_cores) {
  usable_cores.store(cpu_cores > 0 ? cpu_cores : DetectUsableCores());
  // Always set explicitly: LibTorch's own default depends on the OpenMP
  // runtime and environment variables.
  const int threads = intra_op_threads > 0 ? intra_op_threads : UsableCores();
  at::set_num_threads(threads);
  SetBlasThreads(1);
}

void UseTorchThreadsInThisThread() { at::init_num_threads(); }

int TorchIntraOpThreads() { return std::max(1, at::get_num_threads()); }

int UsableCores() {
  const int cores = usable_cores.load();
  return cores > 0 ? cores : DetectUsableCores();
}

bool SetBlasThreads(int threads) {
  // Looked up at run time: the project links LibTorch, not a BLAS, and the
  // system picks which libblas LibTorch gets.
  using SetThreads = void (*)(int);
  auto set_threads = reinterpret_cast<SetThreads>(
      dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set_threads == nullptr) return false;
  set_threads(threads);
  return true;
}

namespace {

int BlasThreads() {
  using GetThreads = int (*)();
  auto get_threads = reinterpret_cast<GetThreads>(
      dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get_threads == nullptr ? 0 : get_threads();
}

}  // namespace

std::string TorchRuntimeSummary() {
  const int blas_threads = BlasThreads();
  return absl::StrCat(
      "LibTorch ", TORCH_VERSION, ", usable cores ", UsableCores(),
      ", intra-op threads ", at::get_num_threads(), ", OpenBLAS threads ",
      blas_threads > 0 ? absl::StrCat(blas_threads) : "n/a", ", CUDA devices ",
      torch::cuda::is_available() ? torch::cuda::device_count() : 0);
}

}  // namespace segserve
