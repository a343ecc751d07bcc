#ifndef SEGSERVE_SERVER_CORE_THREAD_POOL_H_
#define SEGSERVE_SERVER_CORE_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace segserve {

// Fixed-size worker pool for CPU work off the gRPC threads (decode, resize,
// normalize, mask encoding). Tasks run in FIFO order. The destructor runs
// every task already scheduled, then joins. Thread-safe.
class ThreadPool {
 public:
  // Each thread runs `thread_start` (if set) once, before its first task.
  explicit ThreadPool(int num_threads,
                      std::function<void()> thread_start = nullptr);
  ~ThreadPool();

  void Schedule(absl::AnyInvocable<void()> task);

 private:
  void WorkLoop();

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_THREAD_POOL_H_
