#include "server/core/thread_pool.h"

#include <algorithm>
#include <utility>

namespace segserve {

ThreadPool::ThreadPool(int num_threads, std::function<void()> thread_start) {
  threads_.reserve(std::max(1, num_threads));
  for (int i = 0; i < std::max(1, num_threads); ++i) {
    threads_.emplace_back([this, thread_start] {
      if (thread_start) thread_start();
      WorkLoop();
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& thread : threads_) thread.join();
}

void ThreadPool::Schedule(absl::AnyInvocable<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void ThreadPool::WorkLoop() {
  while (true) {
    absl::AnyInvocable<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;  // Stopping and drained.
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace segserve
