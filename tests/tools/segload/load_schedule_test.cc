#include "tools/segload/load_schedule.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

std::vector<int64_t> Offsets(Arrivals arrivals, double rate, uint64_t seed,
                             int n) {
  ArrivalSchedule schedule(arrivals, rate, seed);
  std::vector<int64_t> offsets;
  for (int i = 0; i < n; ++i) offsets.push_back(schedule.NextOffsetNs());
  return offsets;
}

TEST(ArrivalScheduleTest, ConstantIsEvenAndDoesNotDrift) {
  const std::vector<int64_t> offsets =
      Offsets(Arrivals::kConstant, 3, 1, 300001);
  EXPECT_EQ(offsets[0], 0);
  EXPECT_EQ(offsets[1], 333333333);
  EXPECT_EQ(offsets[2], 666666667);
  EXPECT_EQ(offsets[3], 1000000000);
  // 300000 gaps of 1/3 s: exactly 100000 s, no accumulated rounding.
  EXPECT_EQ(offsets.back(), int64_t{100000} * 1000000000);
}

TEST(ArrivalScheduleTest, PoissonHasTheRateAndExponentialGaps) {
  constexpr int kSamples = 200000;
  constexpr double kRate = 250;  // Mean gap 4 ms.
  const std::vector<int64_t> offsets =
      Offsets(Arrivals::kPoisson, kRate, 42, kSamples + 1);
  EXPECT_EQ(offsets[0], 0);
  double sum = 0, sum_squares = 0;
  int below_mean = 0;
  for (int i = 1; i <= kSamples; ++i) {
    const double gap = static_cast<double>(offsets[i] - offsets[i - 1]);
    ASSERT_GE(gap, 0);
    sum += gap;
    sum_squares += gap * gap;
    if (gap < 1e9 / kRate) ++below_mean;
  }
  const double mean = sum / kSamples;
  const double stddev = std::sqrt(sum_squares / kSamples - mean * mean);
  EXPECT_NEAR(mean, 1e9 / kRate, 0.02 * 1e9 / kRate);
  // An exponential distribution's standard deviation equals its mean, and
  // 1 - 1/e of it lies below the mean.
  EXPECT_NEAR(stddev / mean, 1.0, 0.03);
  EXPECT_NEAR(static_cast<double>(below_mean) / kSamples, 1 - std::exp(-1.0),
              0.01);
}

TEST(ArrivalScheduleTest, PoissonIsRepeatableBySeed) {
  EXPECT_EQ(Offsets(Arrivals::kPoisson, 100, 7, 1000),
            Offsets(Arrivals::kPoisson, 100, 7, 1000));
  EXPECT_NE(Offsets(Arrivals::kPoisson, 100, 7, 1000),
            Offsets(Arrivals::kPoisson, 100, 8, 1000));
}

TEST(ParseArrivalsTest, Names) {
  EXPECT_EQ(*ParseArrivals("constant"), Arrivals::kConstant);
  EXPECT_EQ(*ParseArrivals("poisson"), Arrivals::kPoisson);
  EXPECT_EQ(ParseArrivals("uniform").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_STREQ(ArrivalsName(Arrivals::kPoisson), "poisson");
  EXPECT_STREQ(ArrivalsName(Arrivals::kConstant), "constant");
}

}  // namespace
}  // namespace segserve
