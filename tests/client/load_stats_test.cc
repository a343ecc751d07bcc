#include "client/load_stats.h"

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;

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

TEST(SummarizeStepTest, CountsAndMeans) {
  std::vector<LoadSample> samples;
  for (int i = 1; i <= 10; ++i) {
    LoadSample s;
    s.latency_us = i * 1000;
    s.queue_us = 100;
    s.inference_us = 2000 + i;
    s.batch_size = i % 2 == 0 ? 4 : 2;
    samples.push_back(s);
  }
  LoadSample error;
  error.code = absl::StatusCode::kResourceExhausted;
  error.latency_us = 99999999;  // Not part of the latencies.
  samples.push_back(error);
  samples.push_back(error);
  error.code = absl::StatusCode::kDeadlineExceeded;
  samples.push_back(error);

  const LoadStepResult step = SummarizeStep(4, samples, 2.0);
  EXPECT_EQ(step.concurrency, 4);
  EXPECT_EQ(step.ok, 10);
  EXPECT_DOUBLE_EQ(step.throughput_rps, 5.0);
  EXPECT_EQ(step.latency_us.p50, 5000);
  EXPECT_EQ(step.latency_us.p90, 9000);
  EXPECT_EQ(step.latency_us.p99, 10000);
  EXPECT_EQ(step.latency_us.max, 10000);
  EXPECT_DOUBLE_EQ(step.latency_us.mean, 5500);
  EXPECT_DOUBLE_EQ(step.server_queue_us, 100);
  EXPECT_DOUBLE_EQ(step.server_inference_us, 2005.5);
  EXPECT_DOUBLE_EQ(step.mean_batch_size, 3);
  ASSERT_EQ(step.errors.size(), 2u);
  EXPECT_EQ(step.errors.at("RESOURCE_EXHAUSTED"), 2);
  EXPECT_EQ(step.errors.at("DEADLINE_EXCEEDED"), 1);
  EXPECT_THAT(FormatStepRow(step),
              HasSubstr("DEADLINE_EXCEEDED=1 RESOURCE_EXHAUSTED=2"));
}

TEST(SummarizeStepTest, AllFailed) {
  LoadSample error;
  error.code = absl::StatusCode::kUnavailable;
  const LoadStepResult step = SummarizeStep(1, {error}, 1.0);
  EXPECT_EQ(step.ok, 0);
  EXPECT_EQ(step.throughput_rps, 0);
  EXPECT_EQ(step.latency_us.max, 0);
  EXPECT_EQ(step.errors.at("UNAVAILABLE"), 1);
}

TEST(LoadReportJsonTest, Layout) {
  LoadSample s;
  s.latency_us = 1500;
  s.queue_us = 10;
  s.preprocess_us = 20;
  s.inference_us = 30;
  s.postprocess_us = 40;
  s.batch_size = 2;
  LoadSample error;
  error.code = absl::StatusCode::kUnavailable;
  const LoadStepResult step = SummarizeStep(16, {s, error}, 0.5);
  const std::string json =
      LoadReportJson({step}, {{"target", JsonString("h:1")}, {"raw", "false"}});
  EXPECT_EQ(json,
            "{\"steps\":[{\"concurrency\":16,\"rate\":null,"
            "\"throughput_rps\":2,\"duration_s\":0.5,\"ok\":1,"
            "\"latency_us\":{\"p50\":1500,\"p90\":1500,\"p95\":1500,"
            "\"p99\":1500,\"max\":1500,\"mean\":1500},"
            "\"errors\":{\"UNAVAILABLE\":1},"
            "\"server_us\":{\"queue\":10,\"preprocess\":20,\"inference\":30,"
            "\"postprocess\":40},\"mean_batch_size\":2}],"
            "\"config\":{\"target\":\"h:1\",\"raw\":false}}\n");
}

TEST(JsonStringTest, Escapes) {
  EXPECT_EQ(JsonString("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
}

}  // namespace
}  // namespace segserve
