#include "server/core/service_time.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace segserve {

ServiceTime::ServiceTime(int instances)
    : instances_(size_t(std::max(1, instances))) {}

void ServiceTime::RecordBatch(int instance, int size, absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  if (instance < 0 || size_t(instance) >= instances_.size()) return;
  Instance& stats = instances_[size_t(instance)];
  const double seconds = absl::ToDoubleSeconds(duration);
  if (stats.batches++ == 0) {
    stats.batch_seconds = seconds;
    stats.batch_size = size;
    return;
  }
  stats.batch_seconds += kWeight * (seconds - stats.batch_seconds);
  stats.batch_size += kWeight * (size - stats.batch_size);
}

std::optional<absl::Duration> ServiceTime::EstimateCompletion(
    int queued_items) const {
  absl::MutexLock lock(&mu_);
  struct Timing {
    double seconds;
    double size;  // Items a batch takes (a mean), at least 1.
    double free_at = 0;
  };
  std::vector<Timing> timings;
  Timing mean{0, 0};
  for (const Instance& stats : instances_) {
    if (stats.batches == 0) continue;
    timings.push_back({stats.batch_seconds, std::max(1.0, stats.batch_size)});
    mean.seconds += stats.batch_seconds;
    mean.size += stats.batch_size;
  }
  if (timings.empty()) return std::nullopt;
  mean.seconds /= double(timings.size());
  mean.size = std::max(1.0, mean.size / double(timings.size()));
  timings.resize(instances_.size(), mean);
  // Whole batches ahead, each to the instance free first; the items left
  // over share the request's own batch.
  double ahead = queued_items;
  const auto free_first = [&timings] {
    return std::min_element(
        timings.begin(), timings.end(),
        [](const Timing& a, const Timing& b) { return a.free_at < b.free_at; });
  };
  for (auto next = free_first(); ahead >= next->size; next = free_first()) {
    ahead -= next->size;
    next->free_at += next->seconds;
  }
  double done = HUGE_VAL;
  for (const Timing& timing : timings) {
    done = std::min(done, timing.free_at + timing.seconds);
  }
  return absl::Seconds(done);
}

}  // namespace segserve
