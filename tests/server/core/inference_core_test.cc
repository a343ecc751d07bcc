// Admission through the inference core: tickets, requests of several batch
// items, and the expectations they settle. Fake models behind the
// ModelLoader seam; a real repository, pool and batcher.
#include "server/core/inference_core.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "tests/server/fake_model.h"
#include "tests/server/test_files.h"

namespace segserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"pb(
  platform: BUILTIN
  architecture: "sgcpnet"
  num_classes: 4
  input {
    height: 32
    width: 32
    mean: [ 0, 0, 0 ]
    std: [ 1, 1, 1 ]
  }
  max_batch_size: 4
)pb";

class InferenceCoreTest : public ::testing::Test {
 protected:
  // A repository with the model "m" (version 1), whose config is kConfig
  // plus `extra`.
  void CreateCore(const std::string& extra = "",
                  InferenceCore::Options core_options = {}) {
    const auto root = FreshTestDir("inference_core");
    WriteFile(root / "m" / "config.pbtxt", std::string(kConfig) + extra);
    WriteFile(root / "m" / "1" / "model.pt", "weights");
    ModelRepository::Options options;
    options.root = root.string();
    options.default_model = "m";
    options.clock = RealClock::Get();
    options.metrics = &metrics_;
    options.loader = [this](const v1::ModelConfig& config, const std::string&,
                            const std::string&)
        -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
      return std::make_unique<FakeModel>(state_, int(config.input().height()),
                                         int(config.input().width()));
    };
    auto repository = ModelRepository::Create(options);
    ASSERT_TRUE(repository.ok()) << repository.status();
    repository_ = *std::move(repository);
    repository_->LoadAll();
    ASSERT_TRUE(repository_->IsReady());
    core_ = std::make_unique<InferenceCore>(
        repository_.get(), &pool_, &metrics_, RealClock::Get(), core_options);
  }

  void TearDown() override {
    if (core_) {
      EXPECT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(10)));
    }
  }

  std::unique_ptr<RequestTicket> Admit(const std::string& model = "") {
    auto ticket = core_->Admit({model, 0, absl::InfiniteFuture()});
    EXPECT_TRUE(ticket.ok()) << ticket.status();
    return ticket.ok() ? *std::move(ticket) : nullptr;
  }

  // A batch item whose fake answer labels every pixel with `label`.
  static std::unique_ptr<InferenceRequest> Item(int label) {
    auto item = std::make_unique<InferenceRequest>();
    item->input.assign(3 * 32 * 32, uint8_t(label));
    item->region = {0, 0, 32, 32};
    return item;
  }

  std::string MetricsText() {
    return prometheus::TextSerializer().Serialize(registry_.Collect());
  }

  prometheus::Registry registry_;
  Metrics metrics_{&registry_};
  std::shared_ptr<FakeModelState> state_ = std::make_shared<FakeModelState>();
  ThreadPool pool_{2};
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<InferenceCore> core_;
};

TEST_F(InferenceCoreTest, UnknownModelIsRefusedAndCounted) {
  CreateCore();
  auto ticket = core_->Admit({"nope", 0, absl::InfiniteFuture()});
  EXPECT_EQ(ticket.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->inflight(), 0);
  EXPECT_THAT(MetricsText(), HasSubstr("segserve_requests_total{code="
                                       "\"NOT_FOUND\",model=\"nope\","
                                       "version=\"\"} 1"));
}

// Each warm-up round runs every batch size the batcher can form, before the
// model takes requests.
TEST_F(InferenceCoreTest, WarmUpRunsEveryBatchSizeOncePerRound) {
  CreateCore("warmup_batches: 2");
  EXPECT_THAT(state_->BatchSizes(), ElementsAre(4, 3, 2, 1, 4, 3, 2, 1));
}

TEST_F(InferenceCoreTest, TicketIsInFlightUntilItGoes) {
  CreateCore();
  std::unique_ptr<RequestTicket> ticket = Admit();
  ASSERT_NE(ticket, nullptr);
  EXPECT_EQ(core_->inflight(), 1);
  EXPECT_EQ(ticket->model().inflight(), 1);
  EXPECT_EQ(ticket->deadline(), absl::InfiniteFuture());
  EXPECT_FALSE(core_->WaitForIdle(absl::Now() + absl::Milliseconds(10)));
  const std::shared_ptr<ServedModel> model = *repository_->Find("m", 1);
  ticket->Finish(absl::StatusCode::kOk);
  ticket.reset();
  EXPECT_EQ(core_->inflight(), 0);
  EXPECT_EQ(model->inflight(), 0);
  EXPECT_THAT(MetricsText(), HasSubstr("segserve_requests_total{code=\"OK\","
                                       "model=\"m\",version=\"1\"} 1"));
}

// The drain refuses what arrives after it began and waits for what was
// admitted before.
TEST_F(InferenceCoreTest, DrainRefusesNewRequestsAndWaitsForAdmittedOnes) {
  CreateCore();
  std::unique_ptr<RequestTicket> admitted = Admit();
  ASSERT_NE(admitted, nullptr);
  core_->StartDraining();
  auto late = core_->Admit({"", 0, absl::InfiniteFuture()});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("shutting down"));
  EXPECT_EQ(core_->inflight(), 1);
  EXPECT_FALSE(core_->WaitForIdle(absl::Now() + absl::Milliseconds(10)));
  admitted->Finish(absl::StatusCode::kOk);
  admitted.reset();
  EXPECT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(1)));
  EXPECT_THAT(MetricsText(), HasSubstr("segserve_requests_total{code="
                                       "\"UNAVAILABLE\",model=\"m\","
                                       "version=\"1\"} 1"));
}

TEST_F(InferenceCoreTest, ModelDefaultTimeoutBecomesTheDeadline) {
  CreateCore("dynamic_batching { default_timeout_us: 5000000 }");
  std::unique_ptr<RequestTicket> ticket = Admit();
  ASSERT_NE(ticket, nullptr);
  EXPECT_EQ(ticket->deadline() - ticket->received(), absl::Seconds(5));

  const absl::Time mine = absl::Now() + absl::Seconds(1);
  auto own = core_->Admit({"m", 0, mine});
  ASSERT_TRUE(own.ok());
  EXPECT_EQ((*own)->deadline(), mine) << "a client's deadline is kept";
}

// The items of one request reach the queue together, so they leave in one
// batch, and come back gathered in the order they were submitted.
TEST_F(InferenceCoreTest, ItemsOfOneRequestAreBatchedAndGatheredInOrder) {
  CreateCore();
  std::unique_ptr<RequestTicket> ticket = Admit();
  ASSERT_NE(ticket, nullptr);
  std::vector<std::unique_ptr<InferenceRequest>> items;
  for (int label : {7, 3, 5}) items.push_back(Item(label));
  absl::Notification done;
  std::vector<int> labels;
  ASSERT_TRUE(ticket
                  ->Submit(std::move(items),
                           [&](std::vector<BatchResult> results) {
                             for (const BatchResult& result : results) {
                               EXPECT_TRUE(result.status.ok());
                               labels.push_back(
                                   result.output.labels.at<uint8_t>(0, 0));
                             }
                             done.Notify();
                           })
                  .ok());
  done.WaitForNotification();
  EXPECT_THAT(labels, ElementsAre(7, 3, 5));
  EXPECT_THAT(state_->BatchSizes(), ElementsAre(3));
}

// The version's statistics (the OIP's ModelStatistics) count batches by
// size, requests by outcome, and the times a request reports.
TEST_F(InferenceCoreTest, StatisticsCountBatchesAndOutcomes) {
  CreateCore();
  std::unique_ptr<RequestTicket> ticket = Admit();
  ASSERT_NE(ticket, nullptr);
  std::vector<std::unique_ptr<InferenceRequest>> items;
  for (int label : {1, 2}) items.push_back(Item(label));
  absl::Notification done;
  ASSERT_TRUE(
      ticket->Submit(std::move(items), [&](auto) { done.Notify(); }).ok());
  done.WaitForNotification();
  ticket->SetTimes({absl::Milliseconds(1), absl::Milliseconds(2),
                    absl::Milliseconds(3), absl::Milliseconds(4)});
  ticket->Finish(absl::StatusCode::kOk);
  ticket.reset();
  std::unique_ptr<RequestTicket> failing = Admit();
  failing->Finish(absl::StatusCode::kInvalidArgument);
  failing.reset();

  const ModelStatistics::Snapshot stats =
      (*repository_->Find("m", 1))->statistics().Read();
  EXPECT_EQ(stats.inference_count, 2u);
  EXPECT_EQ(stats.execution_count, 1u);
  ASSERT_EQ(stats.batch_infer.size(), 1u);
  EXPECT_EQ(stats.batch_infer.at(2).count, 1u);
  EXPECT_EQ(stats.success.count, 1u);
  EXPECT_EQ(stats.fail.count, 1u);
  EXPECT_EQ(stats.queue.total, absl::Milliseconds(1));
  EXPECT_EQ(stats.compute_input.total, absl::Milliseconds(2));
  EXPECT_EQ(stats.compute_infer.total, absl::Milliseconds(3));
  EXPECT_EQ(stats.compute_output.total, absl::Milliseconds(4));
  EXPECT_GT(stats.last_inference, absl::UnixEpoch());
}

TEST_F(InferenceCoreTest, RequestThatDoesNotFitIsRefusedWhole) {
  CreateCore("dynamic_batching { max_queue_size: 2 }");
  std::unique_ptr<RequestTicket> ticket = Admit();
  ASSERT_NE(ticket, nullptr);
  std::vector<std::unique_ptr<InferenceRequest>> items;
  for (int label : {1, 2, 3}) items.push_back(Item(label));
  bool called = false;
  const absl::Status status = ticket->Submit(
      std::move(items), [&](std::vector<BatchResult>) { called = true; });
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("the request's 3 batch item(s) (images or tiles) do "
                        "not fit in the 2 place(s) left of 2"));
  ticket.reset();
  ASSERT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(10)));
  EXPECT_FALSE(called);
  EXPECT_TRUE(state_->BatchSizes().empty()) << "no item of it ran";
}

// A ticket that never submits (its image failed to decode, say) must not
// hold an eager batch for the 10 s delay.
TEST_F(InferenceCoreTest, AbandonedTicketReleasesAnEagerBatch) {
  CreateCore(
      "dynamic_batching { max_queue_delay_us: 10000000 eager_dispatch: true "
      "}");
  std::unique_ptr<RequestTicket> abandoned = Admit();
  std::unique_ptr<RequestTicket> ticket = Admit();
  ASSERT_NE(abandoned, nullptr);
  ASSERT_NE(ticket, nullptr);
  absl::Notification done;
  absl::Duration queue_time;
  std::vector<std::unique_ptr<InferenceRequest>> items;
  items.push_back(Item(1));
  ASSERT_TRUE(ticket
                  ->Submit(std::move(items),
                           [&](std::vector<BatchResult> results) {
                             queue_time = results.front().queue_time;
                             done.Notify();
                           })
                  .ok());
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(100)))
      << "the batch waits for the request still expected";
  abandoned.reset();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_LT(queue_time, absl::Seconds(5));
}

// Runs one request through a blocked model that is released after `hold`,
// so the model's batch time is about `hold`.
void RunSlowBatch(InferenceCore& core, FakeModelState& state,
                  absl::Duration hold) {
  auto release = std::make_shared<absl::Notification>();
  {
    absl::MutexLock lock(&state.mu);
    state.release = release;
  }
  auto ticket = core.Admit({"m", 0, absl::InfiniteFuture()});
  ASSERT_TRUE(ticket.ok());
  absl::Notification done;
  std::vector<std::unique_ptr<InferenceRequest>> items;
  items.push_back(std::make_unique<InferenceRequest>());
  items.back()->input.assign(3 * 32 * 32, 0);
  ASSERT_TRUE((*ticket)
                  ->Submit(std::move(items),
                           [&](std::vector<BatchResult>) { done.Notify(); })
                  .ok());
  absl::SleepFor(hold);
  {
    absl::MutexLock lock(&state.mu);
    state.release = nullptr;
  }
  release->Notify();
  done.WaitForNotification();
}

// From the batch times so far, a request that would miss its deadline is
// refused at arrival, saying by how much.
TEST_F(InferenceCoreTest, RequestThatWouldMissItsDeadlineIsRefusedAtOnce) {
  CreateCore();
  RunSlowBatch(*core_, *state_, absl::Milliseconds(100));
  // Hold the model again with three requests queued behind the running one.
  auto release = std::make_shared<absl::Notification>();
  {
    absl::MutexLock lock(&state_->mu);
    state_->release = release;
  }
  std::vector<std::unique_ptr<RequestTicket>> queued;
  absl::BlockingCounter answered(4);
  for (int i = 0; i < 4; ++i) {
    queued.push_back(Admit());
    std::vector<std::unique_ptr<InferenceRequest>> items;
    items.push_back(Item(i));
    ASSERT_TRUE(queued.back()
                    ->Submit(std::move(items),
                             [&](std::vector<BatchResult>) {
                               answered.DecrementCount();
                             })
                    .ok());
  }
  state_->AwaitBatchesStarted(2);

  auto late = core_->Admit({"m", 0, absl::Now() + absl::Milliseconds(50)});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(late.status().message()),
              HasSubstr("would miss its deadline by about"));
  EXPECT_THAT(MetricsText(), HasSubstr("segserve_requests_total{code="
                                       "\"RESOURCE_EXHAUSTED\",model=\"m\","
                                       "version=\"1\"} 1"));
  auto patient = core_->Admit({"m", 0, absl::Now() + absl::Seconds(30)});
  EXPECT_TRUE(patient.ok()) << patient.status();
  auto unbounded = core_->Admit({"m", 0, absl::InfiniteFuture()});
  EXPECT_TRUE(unbounded.ok()) << unbounded.status();

  {
    absl::MutexLock lock(&state_->mu);
    state_->release = nullptr;
  }
  release->Notify();
  answered.Wait();
}

TEST_F(InferenceCoreTest, DeadlineAdmissionCanBeTurnedOff) {
  CreateCore("", {.deadline_admission = false});
  RunSlowBatch(*core_, *state_, absl::Milliseconds(100));
  auto late = core_->Admit({"m", 0, absl::Now() + absl::Milliseconds(1)});
  EXPECT_TRUE(late.ok()) << late.status();
}

}  // namespace
}  // namespace segserve
