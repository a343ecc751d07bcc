#ifndef SEGSERVE_SERVER_CORE_DYNAMIC_BATCHER_H_
#define SEGSERVE_SERVER_CORE_DYNAMIC_BATCHER_H_

#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/core/inference_request.h"

namespace segserve {

// One queue per model version, with Triton's dynamic batching rules. Model
// instances call NextBatch() from their threads; a batch goes to whichever
// instance is free.
//
// A batch is formed when:
//   - max_batch_size requests are queued, or
//   - the queue holds at least one preferred batch size (the largest that
//     fits is taken), or
//   - the oldest request has waited max_queue_delay, or
//   - the delay is zero and no preferred sizes are set (send what is there),
//   - or, with eager_dispatch, no expected request (Expect) is still on its
//     way: waiting could only catch requests that have not been sent yet.
// Requests are taken in priority order (0 first), FIFO within a level.
// Expired requests (DEADLINE_EXCEEDED) and cancelled ones (CANCELLED) are
// completed and dropped before they reach a batch.
//
// Thread-safe.
class DynamicBatcher {
 public:
  struct Options {
    int max_batch_size = 1;
    std::vector<int> preferred_batch_sizes;
    absl::Duration max_queue_delay = absl::ZeroDuration();
    int max_queue_size = 0;  // 0: unbounded.
    int priority_levels = 1;
    bool eager_dispatch = false;
    // Told of every change of the queue's depth (+n queued, -n taken or
    // dropped), under the batcher's lock: a gauge fed by deltas stays right
    // when two copies of one version (a reload) share it.
    std::function<void(int delta)> on_depth_change;
  };

  // Both pointers must outlive the batcher.
  DynamicBatcher(Options options, Clock* clock);
  ~DynamicBatcher();

  // Announces a request that was accepted and is being preprocessed: with
  // eager_dispatch, a partial batch waits for it (up to max_queue_delay).
  // Each Expect() is followed by exactly one Enqueue() or Unexpect().
  void Expect();
  // The expected request will not come (it failed before reaching the queue).
  void Unexpect();

  // Queues the items of one request as a unit: all of them, or none, which
  // stay with the caller, and the reason: RESOURCE_EXHAUSTED when the queue
  // cannot take them all, UNAVAILABLE after Shutdown(), INVALID_ARGUMENT for
  // a priority outside [0, priority_levels). Either way it settles one
  // Expect(), if any is outstanding: the items arrive together, so a batch
  // never leaves with the first of them while the rest are still coming.
  absl::Status Enqueue(std::vector<std::unique_ptr<InferenceRequest>>& items);
  // The same for a request of one item.
  absl::Status Enqueue(std::unique_ptr<InferenceRequest>& request);

  // Blocks until a batch is ready and returns it (never empty), or returns an
  // empty batch once Shutdown() was called and the queue has drained.
  std::vector<std::unique_ptr<InferenceRequest>> NextBatch();

  // Stops accepting requests. Queued requests are still batched, without
  // waiting for the delay, so draining loses nothing.
  void Shutdown();

  // No instance will take batches any more: answers every queued request
  // with `why` now, and refuses later ones with it.
  void Close(absl::Status why);

  int queue_depth() const;

 private:
  int QueuedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DepthChangedLocked(int delta) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Completes expired and cancelled requests; returns them for completion
  // outside the lock.
  void RemoveDeadLocked(absl::Time now,
                        std::vector<std::unique_ptr<InferenceRequest>>* dead)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How many requests to dispatch now (0: keep waiting).
  int ReadySizeLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When waiting must stop even if nothing arrives: the oldest request's
  // delay or the earliest deadline.
  absl::Time WakeTimeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  // One FIFO per priority level.
  std::vector<std::deque<std::unique_ptr<InferenceRequest>>> queues_
      ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status closed_ ABSL_GUARDED_BY(mu_);  // Set by Close.
  int expected_ ABSL_GUARDED_BY(mu_) = 0;     // Expect()ed, not yet settled.
  // Bumped on every enqueue and Unexpect() so waiting instances re-evaluate.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_DYNAMIC_BATCHER_H_
