#ifndef SEGSERVE_SERVER_CORE_SERVICE_TIME_H_
#define SEGSERVE_SERVER_CORE_SERVICE_TIME_H_

#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace segserve {

// How long a model version's batches take on each of its instances, learnt
// from the batches they ran (exponentially weighted, so it follows load and
// warm-up), and from that how long a new request would wait:
// deadline-aware admission refuses at arrival a request that would miss its
// deadline, instead of queueing it only to time out. Instances are timed
// apart because they need not be alike (a GPU and a CPU instance of one
// model, or two kinds of GPU). Thread-safe.
class ServiceTime {
 public:
  explicit ServiceTime(int instances);

  // `instance` in [0, instances).
  void RecordBatch(int instance, int size, absl::Duration duration);

  // When a request queued behind `queued_items` others would be done: the
  // batches ahead go to whichever instance is free first, then the
  // request's own batch to the one that would finish it first. An instance
  // that has run no batch yet counts as the mean of those that have;
  // nullopt before the first batch.
  std::optional<absl::Duration> EstimateCompletion(int queued_items) const;

 private:
  static constexpr double kWeight = 0.2;  // Of the newest batch.

  struct Instance {
    int batches = 0;
    double batch_seconds = 0;
    double batch_size = 0;
  };

  mutable absl::Mutex mu_;
  std::vector<Instance> instances_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_SERVICE_TIME_H_
