#include "server/core/model_statistics.h"

namespace segserve {

void ModelStatistics::RecordBatch(int size, absl::Duration infer,
                                  absl::Time finished) {
  absl::MutexLock lock(&mu_);
  totals_.inference_count += uint64_t(size);
  ++totals_.execution_count;
  totals_.batch_infer[size].Add(infer);
  totals_.last_inference = std::max(totals_.last_inference, finished);
}

void ModelStatistics::RecordSuccess(absl::Duration total,
                                    const RequestTimes& times) {
  absl::MutexLock lock(&mu_);
  totals_.success.Add(total);
  totals_.queue.Add(times.queue);
  totals_.compute_input.Add(times.compute_input);
  totals_.compute_infer.Add(times.compute_infer);
  totals_.compute_output.Add(times.compute_output);
}

void ModelStatistics::RecordFailure(absl::Duration total) {
  absl::MutexLock lock(&mu_);
  totals_.fail.Add(total);
}

ModelStatistics::Snapshot ModelStatistics::Read() const {
  absl::MutexLock lock(&mu_);
  return totals_;
}

}  // namespace segserve
