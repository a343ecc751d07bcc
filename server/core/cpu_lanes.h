#ifndef SEGSERVE_SERVER_CORE_CPU_LANES_H_
#define SEGSERVE_SERVER_CORE_CPU_LANES_H_

#include <functional>
#include <memory>

#include "absl/functional/function_ref.h"
#include "server/core/served_model.h"
#include "server/core/thread_pool.h"

namespace segserve {

// The threads on which every CPU model is created and run.
//
// LibTorch runs CPU ops on an OpenMP pool that belongs to the thread that
// starts them, so each thread that runs models gets a pool of its own. With
// more pooled threads than cores, libgomp stops spinning between parallel
// regions and sleeps on a futex in every one of them: with three models
// loaded on 2 cores, each on its instance's thread, the one in use ran at
// half its speed (BENCHMARKS.md). Running all CPU model work on a fixed set
// of lanes keeps the pools within the cores, however many models and
// instances are loaded. Thread-safe.
class CpuLanes {
 public:
  // `lanes` threads; each calls `init` (if set) once, before its first task.
  CpuLanes(int lanes, std::function<void()> init);

  // Runs `work` on a free lane (FIFO) and returns once it has finished.
  // `work` must not throw, and must not call Run itself: with every lane
  // waiting on its own nested call, nothing would run it.
  void Run(absl::FunctionRef<void()> work);

 private:
  ThreadPool pool_;
};

// Wraps `loader`: models for device "cpu" are created on `lanes`, and their
// Infer runs there too (the caller's thread waits); other devices pass
// through unchanged. Exceptions from the loader become INTERNAL errors.
ModelLoader RunCpuModelsOnLanes(ModelLoader loader,
                                std::shared_ptr<CpuLanes> lanes);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_CPU_LANES_H_
