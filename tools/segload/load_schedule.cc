#include "tools/segload/load_schedule.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace segserve {

absl::StatusOr<Arrivals> ParseArrivals(absl::string_view name) {
  if (name == "constant") return Arrivals::kConstant;
  if (name == "poisson") return Arrivals::kPoisson;
  return absl::InvalidArgumentError(absl::StrCat(
      "--arrivals=", name, " is unknown; use constant or poisson"));
}

const char* ArrivalsName(Arrivals arrivals) {
  return arrivals == Arrivals::kPoisson ? "poisson" : "constant";
}

ArrivalSchedule::ArrivalSchedule(Arrivals arrivals, double rate_rps,
                                 uint64_t seed)
    : arrivals_(arrivals), interval_ns_(1e9 / rate_rps), rng_(seed) {}

int64_t ArrivalSchedule::NextOffsetNs() {
  const int64_t k = index_++;
  if (arrivals_ == Arrivals::kConstant) {
    return std::llround(static_cast<double>(k) * interval_ns_);
  }
  if (k > 0) {
    // Inverse transform of a uniform in [0, 1) built from 53 random bits:
    // the same numbers on every standard library, unlike
    // std::exponential_distribution.
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    poisson_ns_ += -std::log1p(-u) * interval_ns_;
  }
  return std::llround(poisson_ns_);
}

}  // namespace segserve
