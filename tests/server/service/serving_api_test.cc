// The transport-neutral service layer on a real repository, core and
// pipeline with fake models: one request of several images is one
// admission, one statistics entry and one answer; rights are checked once
// for every kind of call; metadata and control behave the same for every
// frontend.
#include "server/service/serving_api.h"

#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "server/core/inference_core.h"
#include "server/core/metrics.h"
#include "server/core/model_repository.h"
#include "server/core/thread_pool.h"
#include "server/pipeline/segment_processor.h"
#include "tests/server/fake_model.h"
#include "tests/server/test_files.h"

namespace segserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"pb(
  platform: BUILTIN
  architecture: "sgcpnet"
  num_classes: 4
  class_names: [ "zero", "one", "two", "three" ]
  input {
    height: 32
    width: 32
    mean: [ 0, 0, 0 ]
    std: [ 1, 1, 1 ]
  }
  max_batch_size: 3
  dynamic_batching { max_queue_delay_us: 20000 }
)pb";

constexpr char kTokens[] =
    "reader-token-0123456789 metadata\n"
    "runner-token-0123456789 inference\n"
    "admin-token-01234567890 admin\n";

class ServingApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = FreshTestDir("serving_api");
    WriteFile(root_ / "only" / "config.pbtxt", kConfig);
    WriteFile(root_ / "only" / "1" / "model.pt", "weights");
  }

  void TearDown() override {
    if (core_) {
      EXPECT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(10)));
    }
    api_.reset();
    repository_.reset();
  }

  // `tokens`: empty, every call is allowed.
  void Start(const std::string& tokens = "",
             ModelControlMode mode = ModelControlMode::kNone) {
    if (!tokens.empty()) {
      auto authorizer = TokenAuthorizer::FromText(tokens, "test tokens");
      ASSERT_TRUE(authorizer.ok()) << authorizer.status();
      authorizer_ = *std::move(authorizer);
    }
    ModelRepository::Options options;
    options.root = root_.string();  // One model, named by no option.
    options.clock = RealClock::Get();
    options.metrics = &metrics_;
    options.control_mode = mode;
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
    core_ = std::make_unique<InferenceCore>(repository_.get(), &pool_,
                                            &metrics_, RealClock::Get());
    processor_ = std::make_unique<SegmentProcessor>(
        SegmentProcessor::Options{.max_image_pixels = 1 << 20}, core_.get());
    api_ = std::make_unique<ServingApi>(processor_.get(), core_.get(),
                                        repository_.get(), authorizer_.get());
  }

  // A job of `count` gray images, the i-th of value first + i.
  SegmentJob GrayJob(int count, uint8_t first = 1) {
    SegmentJob job;
    for (int i = 0; i < count; ++i) {
      pixels_.emplace_back(size_t(20 * 10), char(first + i));
      ImageInput& image = job.images.emplace_back();
      image.raw = true;
      image.raw_width = 20;
      image.raw_height = 10;
      image.raw_format = PixelFormat::kGray8;
      image.raw_data = pixels_.back();
    }
    job.mask_format = MaskFormat::kRaw;
    return job;
  }

  // Grants the call, then infers: the grant's refusal is the answer.
  absl::StatusOr<std::vector<SegmentResult>> Infer(SegmentJob job,
                                                   CallContext call = {}) {
    SEGSERVE_ASSIGN_OR_RETURN(InferenceGrant grant,
                              api_->AuthorizeInference(std::move(call)));
    absl::Notification done;
    absl::StatusOr<std::vector<SegmentResult>> out;
    api_->Infer(grant, std::move(job),
                [&](absl::StatusOr<std::vector<SegmentResult>> results) {
                  out = std::move(results);
                  done.Notify();
                });
    done.WaitForNotification();
    return out;
  }

  absl::Status Load(const CallContext& call, const std::string& name) {
    absl::Notification done;
    absl::Status out;
    api_->LoadModel(call, name, std::nullopt, [&](absl::Status status) {
      out = status;
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  static CallContext Bearer(const std::string& token) {
    CallContext call;
    call.authorization = "Bearer " + token;
    return call;
  }

  uint64_t Successes() {
    auto statistics = api_->Statistics({}, "only", "1");
    EXPECT_TRUE(statistics.ok()) << statistics.status();
    return statistics.ok() ? statistics->at(0).snapshot.success.count : 0;
  }

  fs::path root_;
  prometheus::Registry registry_;
  Metrics metrics_{&registry_};
  std::shared_ptr<FakeModelState> state_ = std::make_shared<FakeModelState>();
  ThreadPool pool_{2};
  std::deque<std::string> pixels_;
  std::unique_ptr<TokenAuthorizer> authorizer_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<InferenceCore> core_;
  std::unique_ptr<SegmentProcessor> processor_;
  std::unique_ptr<ServingApi> api_;
};

TEST_F(ServingApiTest, ARepositoryOfOneModelServesItByDefault) {
  Start();
  EXPECT_EQ(api_->default_model(), "only");
  auto results = Infer(GrayJob(1));  // Names no model.
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(results->at(0).model, "only");
}

TEST_F(ServingApiTest, ImagesOfOneRequestAreOneRequest) {
  Start();
  auto results = Infer(GrayJob(3, 5));
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const SegmentResult& result = results->at(size_t(i));
    EXPECT_EQ(result.width, 20);
    EXPECT_EQ(result.num_classes, 4);
    // In request order: each image's own answer.
    EXPECT_EQ(result.mask[0], char(5 + i)) << "image " << i;
  }
  // One entry in the statistics and the request counter, not three; the
  // images were batched together.
  EXPECT_EQ(Successes(), 1u);
  const std::vector<int> batches = state_->BatchSizes();
  EXPECT_EQ(batches, std::vector<int>({3}));
}

TEST_F(ServingApiTest, MoreImagesThanTheModelTakesAreRefusedAsAWhole) {
  Start();
  auto results = Infer(GrayJob(4));
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(results.status().message(),
              HasSubstr("holds 4 images; model 'only' takes at most 3"));
  EXPECT_TRUE(state_->BatchSizes().empty());
}

TEST_F(ServingApiTest, OneBadImageFailsTheRequestAndRunsNone) {
  Start();
  SegmentJob job = GrayJob(3);
  job.images[1].raw_data = job.images[1].raw_data.substr(0, 7);
  auto results = Infer(std::move(job));
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(state_->BatchSizes().empty());
  auto statistics = api_->Statistics({}, "only", "");
  ASSERT_TRUE(statistics.ok());
  EXPECT_EQ(statistics->at(0).snapshot.fail.count, 1u);
}

TEST_F(ServingApiTest, AFailedItemAbandonsItsSiblingsWithItsOwnError) {
  Start();
  {
    absl::MutexLock lock(&state_->mu);
    state_->error = absl::InternalError("the model broke");
  }
  auto results = Infer(GrayJob(2));
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(results.status().message(), HasSubstr("the model broke"));
}

TEST_F(ServingApiTest, EveryCallNeedsItsRight) {
  Start(kTokens);
  // Inference: the runner may, the reader may not, no token is no caller.
  EXPECT_TRUE(Infer(GrayJob(1), Bearer("runner-token-0123456789")).ok());
  EXPECT_EQ(
      Infer(GrayJob(1), Bearer("reader-token-0123456789")).status().code(),
      absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Infer(GrayJob(1)).status().code(),
            absl::StatusCode::kUnauthenticated);
  // Metadata.
  EXPECT_TRUE(api_->ListModels(Bearer("reader-token-0123456789")).ok());
  EXPECT_EQ(api_->ListModels(Bearer("runner-token-0123456789")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(api_->DescribeModel({}, "only", "").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(api_->Statistics({}, "", "").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(api_->ModelReady({}, "only", "").status().code(),
            absl::StatusCode::kUnauthenticated);
  // Control needs admin, whatever the mode answers afterwards.
  EXPECT_EQ(Load(Bearer("reader-token-0123456789"), "only").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Load(Bearer("admin-token-01234567890"), "only").code(),
            absl::StatusCode::kFailedPrecondition);
  // Readiness stays open for probes.
  EXPECT_TRUE(api_->Ready());
}

TEST_F(ServingApiTest, DescribesVersionsOnce) {
  Start();
  auto described = api_->DescribeModel({}, "", "1");
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->name, "only");
  EXPECT_EQ(api_->DescribeModel({}, "only", "9").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(api_->DescribeModel({}, "nope", "").status().code(),
            absl::StatusCode::kNotFound);
  auto ready = api_->ModelReady({}, "only", "1");
  ASSERT_TRUE(ready.ok());
  EXPECT_TRUE(*ready);
  EXPECT_EQ(api_->ModelReady({}, "only", "9").status().code(),
            absl::StatusCode::kNotFound);
  // The API's version strings are checked here, once, for every frontend.
  for (const char* bad : {"x", "0", "-1", "1.5", "99999999999999999999"}) {
    const absl::Status refused = api_->ModelReady({}, "only", bad).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(refused.message()),
                HasSubstr("is not a version number; give a positive integer"));
  }
  auto statistics = api_->Statistics({}, "only", "1");
  ASSERT_TRUE(statistics.ok()) << statistics.status();
  ASSERT_EQ(statistics->size(), 1u);
  EXPECT_EQ((*statistics)[0].version, 1);
}

TEST_F(ServingApiTest, TheDrainRefusesInferenceAndControl) {
  Start("", ModelControlMode::kExplicit);
  ASSERT_TRUE(Load({}, "only").ok());
  int drained = 0;
  api_->OnDrain([&] { ++drained; });
  api_->StartDraining();
  EXPECT_EQ(drained, 1) << "the frontends' drain actions run";
  EXPECT_FALSE(api_->Ready());
  SegmentJob job = GrayJob(1);
  job.model = "only";
  EXPECT_EQ(Infer(std::move(job)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Load({}, "only").code(), absl::StatusCode::kUnavailable);
  auto ready = api_->ModelReady({}, "only", "");
  ASSERT_TRUE(ready.ok());
  EXPECT_FALSE(*ready);
}

TEST_F(ServingApiTest, CallsAreCountedUntilTheirHoldsGo) {
  Start();
  EXPECT_TRUE(api_->WaitForCallsDone(absl::Now()));
  auto hold = std::make_unique<OpenCalls::Hold>(api_->calls());
  EXPECT_FALSE(api_->WaitForCallsDone(absl::Now() + absl::Milliseconds(20)));
  hold.reset();
  EXPECT_TRUE(api_->WaitForCallsDone(absl::Now()));
}

}  // namespace
}  // namespace segserve
