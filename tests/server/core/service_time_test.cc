#include "server/core/service_time.h"

#include "gtest/gtest.h"

namespace segserve {
namespace {

TEST(ServiceTimeTest, NoEstimateBeforeTheFirstBatch) {
  ServiceTime time;
  EXPECT_FALSE(time.EstimateCompletion(10, 1).has_value());
}

TEST(ServiceTimeTest, QueuedBatchesShareTheInstances) {
  ServiceTime time;
  time.RecordBatch(4, absl::Milliseconds(100));
  // Own batch only.
  EXPECT_EQ(*time.EstimateCompletion(0, 1), absl::Milliseconds(100));
  EXPECT_EQ(*time.EstimateCompletion(3, 1), absl::Milliseconds(100));
  // Two full batches ahead, then its own.
  EXPECT_EQ(*time.EstimateCompletion(8, 1), absl::Milliseconds(300));
  // Two instances take those two batches at once.
  EXPECT_EQ(*time.EstimateCompletion(8, 2), absl::Milliseconds(200));
}

TEST(ServiceTimeTest, FollowsTheRecentBatches) {
  ServiceTime time;
  time.RecordBatch(1, absl::Milliseconds(100));
  for (int i = 0; i < 50; ++i) time.RecordBatch(1, absl::Milliseconds(10));
  const absl::Duration estimate = *time.EstimateCompletion(0, 1);
  EXPECT_GT(estimate, absl::Milliseconds(9));
  EXPECT_LT(estimate, absl::Milliseconds(11));
}

}  // namespace
}  // namespace segserve
