#ifndef SEGSERVE_MODEL_TORCH_RUNTIME_H_
#define SEGSERVE_MODEL_TORCH_RUNTIME_H_

#include <string>

namespace segserve {

// Sets LibTorch's intra-op thread count for the process (0: one per
// hardware thread). Call once at startup, before any model runs.
void SetTorchThreads(int intra_op_threads);

// "LibTorch 1.13.1, intra-op threads 2, CUDA devices 0", for the log.
std::string TorchRuntimeSummary();

}  // namespace segserve

#endif  // SEGSERVE_MODEL_TORCH_RUNTIME_H_
