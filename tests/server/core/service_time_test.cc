#include "server/core/service_time.h"

#include "gtest/gtest.h"

namespace segserve {
namespace {

TEST(ServiceTimeTest, NoEstimateBeforeTheFirstBatch) {
  ServiceTime time(1);
  EXPECT_FALSE(time.EstimateCompletion(10).has_value());
}

TEST(ServiceTimeTest, QueuedBatchesShareTheInstances) {
  ServiceTime one(1);
  one.RecordBatch(0, 4, absl::Milliseconds(100));
  // Own batch only.
  EXPECT_EQ(*one.EstimateCompletion(0), absl::Milliseconds(100));
  EXPECT_EQ(*one.EstimateCompletion(3), absl::Milliseconds(100));
  // Two full batches ahead, then its own.
  EXPECT_EQ(*one.EstimateCompletion(8), absl::Milliseconds(300));
  // Two instances take those two batches at once.
  ServiceTime two(2);
  two.RecordBatch(0, 4, absl::Milliseconds(100));
  two.RecordBatch(1, 4, absl::Milliseconds(100));
  EXPECT_EQ(*two.EstimateCompletion(8), absl::Milliseconds(200));
}

// An instance that has not run yet counts as the mean of those that have.
TEST(ServiceTimeTest, AnInstanceNotYetTimedCountsAsTheOthers) {
  ServiceTime two(2);
  two.RecordBatch(0, 4, absl::Milliseconds(100));
  EXPECT_EQ(*two.EstimateCompletion(8), absl::Milliseconds(200));
}

// A fast and a slow instance of one model (a GPU beside a CPU): the queue
// drains mostly through the fast one, and the request's own batch goes to
// whichever would finish it first.
TEST(ServiceTimeTest, UnlikeInstancesAreTimedApart) {
  ServiceTime time(2);
  time.RecordBatch(0, 4, absl::Milliseconds(10));   // fast
  time.RecordBatch(1, 4, absl::Milliseconds(100));  // slow
  EXPECT_EQ(*time.EstimateCompletion(0), absl::Milliseconds(10));
  // 8 batches ahead: the slow one takes one of them (free at 100 ms), the
  // fast one seven (free at 70 ms); the own batch ends on the fast one at
  // 80 ms. Treated alike (mean 55 ms, two at a time) it would be 275 ms.
  EXPECT_EQ(*time.EstimateCompletion(32), absl::Milliseconds(80));
}

TEST(ServiceTimeTest, FollowsTheRecentBatches) {
  ServiceTime time(1);
  time.RecordBatch(0, 1, absl::Milliseconds(100));
  for (int i = 0; i < 50; ++i) time.RecordBatch(0, 1, absl::Milliseconds(10));
  const absl::Duration estimate = *time.EstimateCompletion(0);
  EXPECT_GT(estimate, absl::Milliseconds(9));
  EXPECT_LT(estimate, absl::Milliseconds(11));
}

}  // namespace
}  // namespace segserve
