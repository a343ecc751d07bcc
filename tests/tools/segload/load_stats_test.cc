#include "tools/segload/load_stats.h"

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

TEST(PercentileTest, NearestRank) {
  const std::vector<int64_t> four = {1, 2, 3, 4};
  EXPECT_EQ(Percentile(four, 0.5), 2);
  EXPECT_EQ(Percentile(four, 0.75), 3);
  EXPECT_EQ(Percentile(four, 0.76), 4);
  EXPECT_EQ(Percentile(four, 1.0), 4);
  EXPECT_EQ(Percentile(four, 0.0), 1);
  EXPECT_EQ(Percentile({}, 0.5), 0);
  std::vector<int64_t> hundred;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i);
  EXPECT_EQ(Percentile(hundred, 0.99), 99);
  EXPECT_EQ(Percentile(hundred, 0.90), 90);
}

TEST(SummarizeSamplesTest, CountsMeansAndSplits) {
  std::vector<LoadSample> samples;
  for (int i = 1; i <= 10; ++i) {
    LoadSample s;
    s.target = i % 2;
    s.latency_us = i * 1000;
    s.wait_us = i * 1000 - 100;
    s.deserialize_us = 100;
    s.serialize_us = 2.5;
    s.queue_us = 100;
    s.inference_us = 2000 + i;
    s.batch_size = i % 2 == 0 ? 4 : 2;
    samples.push_back(s);
  }
  LoadSample error;
  error.target = 2;
  error.code = absl::StatusCode::kResourceExhausted;
  error.latency_us = 3000;  // Not part of the latencies: of the failures.
  samples.push_back(error);
  samples.push_back(error);
  error.code = absl::StatusCode::kDeadlineExceeded;
  error.latency_us = 99999999;
  samples.push_back(error);

  const LoadStepResult step = SummarizeSamples(samples, 2.0);
  EXPECT_EQ(step.ok, 10);
  EXPECT_EQ(step.failed, 3);
  EXPECT_DOUBLE_EQ(step.throughput_rps, 5.0);
  EXPECT_DOUBLE_EQ(step.elapsed_s, 2.0);
  EXPECT_EQ(step.latency_us.p50, 5000);
  EXPECT_EQ(step.latency_us.p90, 9000);
  EXPECT_EQ(step.latency_us.p95, 10000);
  EXPECT_EQ(step.latency_us.p99, 10000);
  EXPECT_EQ(step.latency_us.max, 10000);
  EXPECT_DOUBLE_EQ(step.latency_us.mean, 5500);
  ASSERT_EQ(step.failed_latency_us.size(), 2u);
  EXPECT_EQ(step.failed_latency_us.at("RESOURCE_EXHAUSTED").p99, 3000);
  EXPECT_EQ(step.failed_latency_us.at("DEADLINE_EXCEEDED").max, 99999999);
  EXPECT_DOUBLE_EQ(step.client_wait_us, 5400);
  EXPECT_DOUBLE_EQ(step.client_deserialize_us, 100);
  EXPECT_DOUBLE_EQ(step.client_serialize_us, 2.5);
  EXPECT_DOUBLE_EQ(step.server_queue_us, 100);
  EXPECT_DOUBLE_EQ(step.server_inference_us, 2005.5);
  EXPECT_DOUBLE_EQ(step.mean_batch_size, 3);
  ASSERT_EQ(step.errors.size(), 2u);
  EXPECT_EQ(step.errors.at("RESOURCE_EXHAUSTED"), 2);
  EXPECT_EQ(step.errors.at("DEADLINE_EXCEEDED"), 1);
  ASSERT_EQ(step.targets.size(), 3u);
  EXPECT_EQ(step.targets[0].ok, 5);
  EXPECT_EQ(step.targets[1].ok, 5);
  EXPECT_EQ(step.targets[2].ok, 0);
  EXPECT_EQ(step.targets[2].failed, 3);
  // Not SummarizeSamples' business.
  EXPECT_EQ(step.concurrency, 0);
  EXPECT_EQ(step.windows, 0);
}

TEST(SummarizeSamplesTest, AllFailed) {
  LoadSample error;
  error.code = absl::StatusCode::kUnavailable;
  const LoadStepResult step = SummarizeSamples({error}, 1.0);
  EXPECT_EQ(step.ok, 0);
  EXPECT_EQ(step.failed, 1);
  EXPECT_EQ(step.throughput_rps, 0);
  EXPECT_EQ(step.latency_us.max, 0);
  EXPECT_EQ(step.errors.at("UNAVAILABLE"), 1);
}

TEST(SummarizeSamplesTest, Empty) {
  const LoadStepResult step = SummarizeSamples({}, 0);
  EXPECT_EQ(step.ok, 0);
  EXPECT_EQ(step.throughput_rps, 0);
  EXPECT_TRUE(step.targets.empty());
}

TEST(IsStableTest, NeedsThreeWindows) {
  EXPECT_FALSE(IsStable({}, 10));
  EXPECT_FALSE(IsStable({{100, 1000}, {100, 1000}}, 10));
  EXPECT_TRUE(IsStable({{100, 1000}, {100, 1000}, {100, 1000}}, 10));
}

TEST(IsStableTest, WithinPercentOfTheMean) {
  // Mean throughput 100: 91 and 109 are within 10%, 89 is not.
  EXPECT_TRUE(IsStable({{91, 1000}, {100, 1000}, {109, 1000}}, 10));
  EXPECT_FALSE(IsStable({{89, 1000}, {100, 1000}, {111, 1000}}, 10));
  // The same for p95.
  EXPECT_TRUE(IsStable({{100, 910}, {100, 1000}, {100, 1090}}, 10));
  EXPECT_FALSE(IsStable({{100, 880}, {100, 1000}, {100, 1120}}, 10));
  EXPECT_TRUE(IsStable({{100, 880}, {100, 1000}, {100, 1120}}, 15));
}

TEST(IsStableTest, OnlyTheLastWindowsCount) {
  EXPECT_TRUE(IsStable(
      {{10, 99999}, {500, 1}, {100, 1000}, {100, 1000}, {100, 1000}}, 10));
  EXPECT_FALSE(
      IsStable({{100, 1000}, {100, 1000}, {100, 1000}, {300, 1000}}, 10));
  EXPECT_TRUE(IsStable({{100, 1000}, {100, 1000}}, 10, /*count=*/2));
}

TEST(IsStableTest, NoThroughputIsNeverStable) {
  EXPECT_FALSE(IsStable({{0, 0}, {0, 0}, {0, 0}}, 10));
  EXPECT_FALSE(IsStable({{100, 1000}, {0, 0}, {100, 1000}}, 1000));
}

}  // namespace
}  // namespace segserve
