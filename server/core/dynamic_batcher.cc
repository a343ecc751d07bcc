#include "server/core/dynamic_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/shutting_down.h"

namespace segserve {

DynamicBatcher::DynamicBatcher(Options options, Clock* clock)
    : options_(std::move(options)), clock_(clock) {
  absl::MutexLock lock(&mu_);
  queues_.resize(std::max(1, options_.priority_levels));
}

DynamicBatcher::~DynamicBatcher() { Shutdown(); }

void DynamicBatcher::Expect() {
  absl::MutexLock lock(&mu_);
  ++expected_;
}

void DynamicBatcher::Unexpect() {
  absl::MutexLock lock(&mu_);
  if (expected_ > 0) --expected_;
  ++generation_;
}

absl::Status DynamicBatcher::Enqueue(
    std::vector<std::unique_ptr<InferenceRequest>>& items) {
  absl::MutexLock lock(&mu_);
  if (expected_ > 0) --expected_;
  // Also on refusal: an instance may be waiting for this request.
  ++generation_;
  if (!closed_.ok()) return closed_;
  if (shutdown_) {
    return ShuttingDownError();
  }
  for (const auto& item : items) {
    if (item->priority >= queues_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "priority ", item->priority, " is out of range: this model has ",
          queues_.size(), " priority level(s), so 0..", queues_.size() - 1,
          " are allowed (0 is served first)"));
    }
  }
  const int queued = QueuedLocked();
  if (options_.max_queue_size > 0 &&
      queued + int(items.size()) > options_.max_queue_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the model's queue is full: the request's ", items.size(),
        " batch item(s) (images or tiles) do not fit in the ",
        std::max(0, options_.max_queue_size - queued), " place(s) left of ",
        options_.max_queue_size, " (max_queue_size); retry with backoff"));
  }
  const absl::Time now = clock_->Now();
  for (auto& item : items) {
    item->enqueue_time = now;
    queues_[item->priority].push_back(std::move(item));
  }
  DepthChangedLocked(int(items.size()));
  items.clear();
  return absl::OkStatus();
}

absl::Status DynamicBatcher::Enqueue(
    std::unique_ptr<InferenceRequest>& request) {
  std::vector<std::unique_ptr<InferenceRequest>> items;
  items.push_back(std::move(request));
  absl::Status status = Enqueue(items);
  if (!status.ok()) request = std::move(items.front());
  return status;
}

std::vector<std::unique_ptr<InferenceRequest>> DynamicBatcher::NextBatch() {
  std::vector<std::unique_ptr<InferenceRequest>> dead;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (dead.empty()) {
        const absl::Time now = clock_->Now();
        RemoveDeadLocked(now, &dead);
        if (!dead.empty()) break;  // Complete them outside the lock first.

        const int ready = ReadySizeLocked(now);
        if (ready > 0) {
          std::vector<std::unique_ptr<InferenceRequest>> batch;
          batch.reserve(ready);
          for (auto& queue : queues_) {
            while (!queue.empty() && int(batch.size()) < ready) {
              batch.push_back(std::move(queue.front()));
              queue.pop_front();
            }
          }
          DepthChangedLocked(-int(batch.size()));
          return batch;
        }
        if (shutdown_ && QueuedLocked() == 0) return {};

        const uint64_t seen = generation_;
        auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return generation_ != seen || shutdown_;
        };
        clock_->AwaitWithDeadline(&mu_, absl::Condition(&changed),
                                  WakeTimeLocked());
      }
    }
    for (auto& request : dead) {
      absl::Status status;
      if (request->IsAbandoned()) {
        status = absl::CancelledError(
            "dropped with its request, another of whose items failed");
      } else if (request->IsCancelled()) {
        status = absl::CancelledError("the client cancelled the request");
      } else {
        status = absl::DeadlineExceededError(absl::StrCat(
            "the request's deadline passed after ",
            absl::ToInt64Milliseconds(clock_->Now() - request->enqueue_time),
            " ms in the queue, before inference; allow a longer deadline or "
            "send less load"));
      }
      BatchResult result;
      result.status = std::move(status);
      result.queue_time = clock_->Now() - request->enqueue_time;
      request->done(std::move(result));
    }
    dead.clear();
  }
}

void DynamicBatcher::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

void DynamicBatcher::Close(absl::Status why) {
  std::vector<std::unique_ptr<InferenceRequest>> dropped;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    closed_ = why;
    for (auto& queue : queues_) {
      for (auto& request : queue) dropped.push_back(std::move(request));
      queue.clear();
    }
    DepthChangedLocked(-int(dropped.size()));
  }
  for (auto& request : dropped) {
    BatchResult result;
    result.status = why;
    result.queue_time = clock_->Now() - request->enqueue_time;
    request->done(std::move(result));
  }
}

int DynamicBatcher::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return QueuedLocked();
}

int DynamicBatcher::QueuedLocked() const {
  size_t total = 0;
  for (const auto& queue : queues_) total += queue.size();
  return int(total);
}

void DynamicBatcher::DepthChangedLocked(int delta) const {
  if (options_.on_depth_change && delta != 0) options_.on_depth_change(delta);
}

void DynamicBatcher::RemoveDeadLocked(
    absl::Time now, std::vector<std::unique_ptr<InferenceRequest>>* dead) {
  const size_t before = dead->size();
  for (auto& queue : queues_) {
    for (auto it = queue.begin(); it != queue.end();) {
      if ((*it)->IsCancelled() || (*it)->deadline <= now) {
        dead->push_back(std::move(*it));
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
  }
  DepthChangedLocked(-int(dead->size() - before));
}

int DynamicBatcher::ReadySizeLocked(absl::Time now) const {
  const int queued = QueuedLocked();
  if (queued == 0) return 0;
  const int max_batch = std::max(1, options_.max_batch_size);
  if (queued >= max_batch || shutdown_) return std::min(queued, max_batch);
  // NextBatch() runs on a free instance: with nothing else on its way,
  // waiting only adds latency.
  if (options_.eager_dispatch && expected_ == 0) return queued;
  int preferred = 0;
  for (int size : options_.preferred_batch_sizes) {
    if (size <= queued && size <= max_batch)
      preferred = std::max(preferred, size);
  }
  if (preferred > 0) return preferred;
  absl::Time oldest = absl::InfiniteFuture();
  for (const auto& queue : queues_) {
    if (!queue.empty()) oldest = std::min(oldest, queue.front()->enqueue_time);
  }
  if (now - oldest >= options_.max_queue_delay) return queued;
  return 0;
}

absl::Time DynamicBatcher::WakeTimeLocked() const {
  absl::Time wake = absl::InfiniteFuture();
  for (const auto& queue : queues_) {
    if (queue.empty()) continue;
    wake =
        std::min(wake, queue.front()->enqueue_time + options_.max_queue_delay);
    for (const auto& request : queue) wake = std::min(wake, request->deadline);
  }
  return wake;
}

}  // namespace segserve
