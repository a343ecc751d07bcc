#ifndef SEGSERVE_SERVER_CORE_SERVICE_TIME_H_
#define SEGSERVE_SERVER_CORE_SERVICE_TIME_H_

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace segserve {

// How long a model version's batches take, learnt from the batches it ran
// (exponentially weighted, so it follows load and warm-up), and from that
// how long a new request would wait: deadline-aware admission refuses at
// arrival a request that would miss its deadline, instead of queueing it
// only to time out. Thread-safe.
class ServiceTime {
 public:
  void RecordBatch(int size, absl::Duration duration);

  // When a request queued behind `queued_items` others would be done, with
  // `instances` instances taking batches; nullopt before the first batch.
  std::optional<absl::Duration> EstimateCompletion(int queued_items,
                                                   int instances) const;

 private:
  static constexpr double kWeight = 0.2;  // Of the newest batch.

  mutable absl::Mutex mu_;
  int batches_ ABSL_GUARDED_BY(mu_) = 0;
  double batch_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  double batch_size_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_SERVICE_TIME_H_
