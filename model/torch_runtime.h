#ifndef SEGSERVE_MODEL_TORCH_RUNTIME_H_
#define SEGSERVE_MODEL_TORCH_RUNTIME_H_

#include <string>

namespace segserve {

// Sets the cores the process may use (0: DetectUsableCores(), which honours
// the CPU affinity mask and a container's CPU quota) and LibTorch's intra-op
// thread count for the process (0: one per usable core), and makes OpenBLAS
// (when it is the BLAS LibTorch loaded) single-threaded: LibTorch already runs
// its ops on that many OpenMP threads, and OpenBLAS's own worker threads spin
// between calls, taking a core from them (10% of SGCPNet's batch-1 time in the
// server on 2 cores; BENCHMARKS.md). Call once at startup, before any model
// runs.
void SetTorchThreads(int intra_op_threads, int cpu_cores = 0);

// OpenMP keeps the thread count per thread: applies the count set above to
// the calling thread. Call first in every thread that runs models.
void UseTorchThreadsInThisThread();

// The intra-op thread count and the usable cores set above (before any
// call: the detected cores).
int TorchIntraOpThreads();
int UsableCores();

// Sets OpenBLAS's thread count when OpenBLAS is loaded; returns whether it
// was. For benchmarks that time a GEMM on every core.
bool SetBlasThreads(int threads);

// "LibTorch 1.13.1, intra-op threads 2, CUDA devices 0", for the log.
std::string TorchRuntimeSummary();

}  // namespace segserve

#endif  // SEGSERVE_MODEL_TORCH_RUNTIME_H_
