#include "server/core/dynamic_batcher.h"

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/fake_clock.h"

namespace segserve {
namespace {

using ::testing::ElementsAre;

struct Completion {
  absl::Mutex mu;
  std::vector<std::pair<int, absl::StatusCode>> done;  // (id, code)
};

class DynamicBatcherTest : public ::testing::Test {
 protected:
  std::unique_ptr<InferenceRequest> MakeRequest(int id, uint32_t priority = 0) {
    auto request = std::make_unique<InferenceRequest>();
    request->input = {uint8_t(id)};
    request->priority = priority;
    request->done = [this, id](BatchResult result) {
      absl::MutexLock lock(&completion_.mu);
      completion_.done.push_back({id, result.status.code()});
    };
    return request;
  }
  void Enqueue(DynamicBatcher& batcher, int id, uint32_t priority = 0) {
    auto request = MakeRequest(id, priority);
    ASSERT_TRUE(batcher.Enqueue(request).ok());
  }
  static std::vector<int> Ids(
      const std::vector<std::unique_ptr<InferenceRequest>>& batch) {
    std::vector<int> ids;
    for (const auto& r : batch) ids.push_back(int(r->input[0]));
    return ids;
  }
  void AwaitCompleted(size_t n) {
    absl::MutexLock lock(&completion_.mu);
    auto enough = [this, n] { return completion_.done.size() >= n; };
    completion_.mu.Await(absl::Condition(&enough));
  }
  std::vector<std::pair<int, absl::StatusCode>> Completed() {
    absl::MutexLock lock(&completion_.mu);
    return completion_.done;
  }

  FakeClock clock_;
  Completion completion_;
};

TEST_F(DynamicBatcherTest, SendsFullBatchAtOnce) {
  DynamicBatcher batcher(
      {.max_batch_size = 4, .max_queue_delay = absl::Seconds(10)}, &clock_);
  for (int i = 0; i < 6; ++i) Enqueue(batcher, i);
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(batcher.queue_depth(), 2);
}

TEST_F(DynamicBatcherTest, SendsLargestPreferredSizeThatFits) {
  DynamicBatcher batcher({.max_batch_size = 8,
                          .preferred_batch_sizes = {2, 4},
                          .max_queue_delay = absl::Seconds(10)},
                         &clock_);
  for (int i = 0; i < 3; ++i) Enqueue(batcher, i);
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(0, 1));
  for (int i = 3; i < 8; ++i) Enqueue(batcher, i);
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(2, 3, 4, 5));
}

TEST_F(DynamicBatcherTest, WaitsForDelayThenSendsPartialBatch) {
  DynamicBatcher batcher(
      {.max_batch_size = 8, .max_queue_delay = absl::Milliseconds(100)},
      &clock_);
  for (int i = 0; i < 3; ++i) Enqueue(batcher, i);
  absl::Notification returned;
  std::vector<int> ids;
  std::thread worker([&] {
    ids = Ids(batcher.NextBatch());
    returned.Notify();
  });
  clock_.Advance(absl::Milliseconds(99));
  EXPECT_FALSE(returned.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  clock_.Advance(absl::Milliseconds(1));
  returned.WaitForNotification();
  worker.join();
  EXPECT_THAT(ids, ElementsAre(0, 1, 2));
}

TEST_F(DynamicBatcherTest, ZeroDelaySendsWhatIsQueued) {
  DynamicBatcher batcher({.max_batch_size = 8}, &clock_);
  Enqueue(batcher, 7);
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(7));
}

TEST_F(DynamicBatcherTest, NewArrivalWakesWaitingInstance) {
  DynamicBatcher batcher(
      {.max_batch_size = 2, .max_queue_delay = absl::Seconds(10)}, &clock_);
  Enqueue(batcher, 1);
  std::vector<int> ids;
  std::thread worker([&] { ids = Ids(batcher.NextBatch()); });
  Enqueue(batcher, 2);  // Fills the batch: no clock movement needed.
  worker.join();
  EXPECT_THAT(ids, ElementsAre(1, 2));
}

// eager_dispatch: the fake clock never moves, so only the rule (not the
// 10 s delay) can release these batches.
TEST_F(DynamicBatcherTest, EagerDispatchSendsAtOnceWhenNothingIsExpected) {
  DynamicBatcher batcher({.max_batch_size = 8,
                          .preferred_batch_sizes = {4, 8},
                          .max_queue_delay = absl::Seconds(10),
                          .eager_dispatch = true},
                         &clock_);
  batcher.Expect();
  Enqueue(batcher, 1);
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(1));
  // Nothing expected: all five go, not the preferred four.
  for (int i = 2; i <= 6; ++i) Enqueue(batcher, i);
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(2, 3, 4, 5, 6));
}

// Two requests expected, one queued: an instance waits until the other one
// is settled by `settle` (queued, or given up), then takes the batch.
std::vector<int> EagerBatchAfter(
    Clock* clock, const std::function<void(DynamicBatcher&)>& settle,
    const std::function<void(DynamicBatcher&)>& enqueue_first) {
  DynamicBatcher batcher({.max_batch_size = 8,
                          .max_queue_delay = absl::Seconds(10),
                          .eager_dispatch = true},
                         clock);
  batcher.Expect();
  batcher.Expect();
  enqueue_first(batcher);
  std::vector<int> ids;
  std::thread worker([&] {
    for (const auto& request : batcher.NextBatch()) {
      ids.push_back(int(request->input[0]));
    }
  });
  settle(batcher);
  worker.join();
  return ids;
}

TEST_F(DynamicBatcherTest, EagerDispatchWaitsForExpectedRequests) {
  EXPECT_THAT(EagerBatchAfter(
                  &clock_, [&](DynamicBatcher& b) { Enqueue(b, 2); },
                  [&](DynamicBatcher& b) { Enqueue(b, 1); }),
              ElementsAre(1, 2));
}

TEST_F(DynamicBatcherTest, UnexpectReleasesTheWaitingInstance) {
  // The other request failed in preprocessing.
  EXPECT_THAT(EagerBatchAfter(
                  &clock_, [](DynamicBatcher& b) { b.Unexpect(); },
                  [&](DynamicBatcher& b) { Enqueue(b, 1); }),
              ElementsAre(1));
}

TEST_F(DynamicBatcherTest, HigherPriorityGoesFirst) {
  DynamicBatcher batcher({.max_batch_size = 2, .priority_levels = 3}, &clock_);
  Enqueue(batcher, 1, /*priority=*/2);
  Enqueue(batcher, 2, /*priority=*/1);
  Enqueue(batcher, 3, /*priority=*/0);
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(3, 2));
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(1));
}

TEST_F(DynamicBatcherTest, RefusesPriorityOutOfRange) {
  DynamicBatcher batcher({.max_batch_size = 2, .priority_levels = 2}, &clock_);
  auto request = MakeRequest(1, /*priority=*/2);
  absl::Status status = batcher.Enqueue(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("0..1"));
  EXPECT_NE(request, nullptr);  // Still the caller's.
}

TEST_F(DynamicBatcherTest, FullQueueRejectsAtOnce) {
  DynamicBatcher batcher({.max_batch_size = 4,
                          .max_queue_delay = absl::Seconds(1),
                          .max_queue_size = 2},
                         &clock_);
  Enqueue(batcher, 1);
  Enqueue(batcher, 2);
  auto third = MakeRequest(3);
  absl::Status status = batcher.Enqueue(third);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("the request's 1 batch item(s) (images or "
                                   "tiles) do not fit in the 0 place(s) left "
                                   "of 2 (max_queue_size)"));
  EXPECT_NE(third, nullptr);
  EXPECT_EQ(batcher.queue_depth(), 2);
}

TEST_F(DynamicBatcherTest, ExpiredRequestsAreDroppedBeforeInference) {
  DynamicBatcher batcher(
      {.max_batch_size = 4, .max_queue_delay = absl::Milliseconds(500)},
      &clock_);
  auto expiring = MakeRequest(1);
  expiring->deadline = clock_.Now() + absl::Milliseconds(100);
  ASSERT_TRUE(batcher.Enqueue(expiring).ok());
  Enqueue(batcher, 2);
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(2));
  EXPECT_THAT(Completed(), ElementsAre(std::make_pair(
                               1, absl::StatusCode::kDeadlineExceeded)));
}

TEST_F(DynamicBatcherTest, ExpiryIsReportedWithoutWaitingForTheDelay) {
  DynamicBatcher batcher(
      {.max_batch_size = 4, .max_queue_delay = absl::Seconds(10)}, &clock_);
  auto expiring = MakeRequest(1);
  expiring->deadline = clock_.Now() + absl::Milliseconds(100);
  ASSERT_TRUE(batcher.Enqueue(expiring).ok());
  std::thread worker([&] { batcher.NextBatch(); });
  clock_.Advance(absl::Milliseconds(100));
  // The worker reports the expiry, then waits again; shut down to release it.
  AwaitCompleted(1);
  batcher.Shutdown();
  worker.join();
  EXPECT_THAT(Completed(), ElementsAre(std::make_pair(
                               1, absl::StatusCode::kDeadlineExceeded)));
}

TEST_F(DynamicBatcherTest, CancelledRequestsAreDropped) {
  DynamicBatcher batcher({.max_batch_size = 4}, &clock_);
  auto cancelled = MakeRequest(1);
  cancelled->cancelled = std::make_shared<std::atomic<bool>>(false);
  auto flag = cancelled->cancelled;
  ASSERT_TRUE(batcher.Enqueue(cancelled).ok());
  Enqueue(batcher, 2);
  flag->store(true);
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(2));
  EXPECT_THAT(Completed(),
              ElementsAre(std::make_pair(1, absl::StatusCode::kCancelled)));
}

TEST_F(DynamicBatcherTest, ShutdownDrainsWithoutDelayThenRefuses) {
  DynamicBatcher batcher(
      {.max_batch_size = 4, .max_queue_delay = absl::Seconds(10)}, &clock_);
  Enqueue(batcher, 1);
  Enqueue(batcher, 2);
  batcher.Shutdown();
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(1, 2));
  EXPECT_TRUE(batcher.NextBatch().empty());
  auto late = MakeRequest(3);
  EXPECT_EQ(batcher.Enqueue(late).code(), absl::StatusCode::kUnavailable);
}

TEST_F(DynamicBatcherTest, ItemsOfOneRequestAreQueuedAllOrNone) {
  DynamicBatcher batcher({.max_batch_size = 4, .max_queue_size = 3}, &clock_);
  Enqueue(batcher, 1);
  std::vector<std::unique_ptr<InferenceRequest>> items;
  for (int id : {2, 3, 4}) items.push_back(MakeRequest(id));
  EXPECT_EQ(batcher.Enqueue(items).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_EQ(items.size(), 3u) << "refused items stay with the caller";
  EXPECT_NE(items[0], nullptr);
  EXPECT_EQ(batcher.queue_depth(), 1);
  items.pop_back();
  ASSERT_TRUE(batcher.Enqueue(items).ok());
  EXPECT_TRUE(items.empty());
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(1, 2, 3));
}

TEST_F(DynamicBatcherTest, DepthChangesAreReportedAsDeltas) {
  int depth = 0;
  DynamicBatcher batcher(
      {.max_batch_size = 2,
       .max_queue_delay = absl::Milliseconds(500),
       .on_depth_change = [&](int delta) { depth += delta; }},
      &clock_);
  auto expiring = MakeRequest(1);
  expiring->deadline = clock_.Now() + absl::Milliseconds(100);
  ASSERT_TRUE(batcher.Enqueue(expiring).ok());
  for (int id = 2; id <= 4; ++id) Enqueue(batcher, id);
  EXPECT_EQ(depth, 4);
  clock_.Advance(absl::Milliseconds(200));
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(2, 3));
  EXPECT_EQ(depth, 1) << "one expired, two taken";
  batcher.Shutdown();
  EXPECT_THAT(Ids(batcher.NextBatch()), ElementsAre(4));
  EXPECT_EQ(depth, 0);
}

}  // namespace
}  // namespace segserve
