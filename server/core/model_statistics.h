#ifndef SEGSERVE_SERVER_CORE_MODEL_STATISTICS_H_
#define SEGSERVE_SERVER_CORE_MODEL_STATISTICS_H_

#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace segserve {

// A count and the cumulative time of what it counts.
struct DurationTotal {
  uint64_t count = 0;
  absl::Duration total;

  void Add(absl::Duration duration) {
    ++count;
    total += duration;
  }
};

// Where one answered request spent its time, in the terms of the Open
// Inference Protocol's statistics: compute_input is preprocessing (decode,
// resize, normalize), compute_infer the model's batch, compute_output the
// postprocessing (labels to the image's size, mask encoding).
struct RequestTimes {
  absl::Duration queue;
  absl::Duration compute_input;
  absl::Duration compute_infer;
  absl::Duration compute_output;
};

// The counts and cumulative times of one model version since it loaded
// (Triton's ModelStatistics). Thread-safe.
class ModelStatistics {
 public:
  struct Snapshot {
    absl::Time last_inference = absl::UnixEpoch();  // Epoch: none yet.
    uint64_t inference_count = 0;                   // Batch items inferred.
    uint64_t execution_count = 0;                   // Batches run.
    DurationTotal success;  // Request durations, admission to answer.
    DurationTotal fail;
    DurationTotal queue;  // Of successful requests, like the three below.
    DurationTotal compute_input;
    DurationTotal compute_infer;
    DurationTotal compute_output;
    // By batch size: the batches run and their model times.
    std::map<int, DurationTotal> batch_infer;
  };

  void RecordBatch(int size, absl::Duration infer, absl::Time finished);
  void RecordSuccess(absl::Duration total, const RequestTimes& times);
  void RecordFailure(absl::Duration total);

  Snapshot Read() const;

 private:
  mutable absl::Mutex mu_;
  Snapshot totals_ ABSL_GUARDED_BY(mu_);
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_STATISTICS_H_
