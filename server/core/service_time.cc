#include "server/core/service_time.h"

#include <algorithm>
#include <cmath>

namespace segserve {

void ServiceTime::RecordBatch(int size, absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  const double seconds = absl::ToDoubleSeconds(duration);
  if (batches_++ == 0) {
    batch_seconds_ = seconds;
    batch_size_ = size;
    return;
  }
  batch_seconds_ += kWeight * (seconds - batch_seconds_);
  batch_size_ += kWeight * (size - batch_size_);
}

std::optional<absl::Duration> ServiceTime::EstimateCompletion(
    int queued_items, int instances) const {
  absl::MutexLock lock(&mu_);
  if (batches_ == 0) return std::nullopt;
  // The batches ahead, shared by the instances, then the request's own.
  const double batches_ahead =
      std::floor(queued_items / std::max(1.0, batch_size_));
  const double rounds = std::floor(batches_ahead / std::max(1, instances)) + 1;
  return absl::Seconds(rounds * batch_seconds_);
}

}  // namespace segserve
