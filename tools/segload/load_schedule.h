#ifndef SEGSERVE_TOOLS_SEGLOAD_LOAD_SCHEDULE_H_
#define SEGSERVE_TOOLS_SEGLOAD_LOAD_SCHEDULE_H_

#include <cstdint>
#include <random>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segserve {

// How an open-loop step spaces its sends.
enum class Arrivals {
  kConstant,  // Exactly 1/rate apart.
  kPoisson,   // Exponentially distributed gaps with mean 1/rate.
};

// "constant" or "poisson"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Arrivals> ParseArrivals(absl::string_view name);
const char* ArrivalsName(Arrivals arrivals);

// The send times of one open-loop step, as offsets from its start. The
// sequence depends only on (arrivals, rate, seed), so runs are repeatable.
// Not thread-safe (one scheduler thread owns it).
class ArrivalSchedule {
 public:
  // `rate_rps` > 0.
  ArrivalSchedule(Arrivals arrivals, double rate_rps, uint64_t seed);

  // The offset of the next send in nanoseconds; the first is 0, the rest are
  // non-decreasing. Constant offsets are k * 1e9 / rate, computed from k so
  // that rounding never accumulates.
  int64_t NextOffsetNs();

 private:
  const Arrivals arrivals_;
  const double interval_ns_;
  std::mt19937_64 rng_;
  int64_t index_ = 0;
  double poisson_ns_ = 0;  // The last Poisson offset, unrounded.
};

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_LOAD_SCHEDULE_H_
