// The repository, served models and the request processor, with fake models
// behind the ModelLoader seam and a real thread pool and batcher.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/core/inference_core.h"
#include "server/core/metrics.h"
#include "server/core/model_repository.h"
#include "server/core/thread_pool.h"
#include "server/pipeline/segment_processor.h"
#include "tests/server/fake_model.h"
#include "tests/server/pipeline/only_result.h"
#include "tests/server/test_files.h"

namespace segserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kGoodConfig[] = R"pb(
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
  max_batch_size: 4
  version_policy { all {} }
)pb";

class ServerComponentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = FreshTestDir("server_components");
    WriteFile(root_ / "good" / "config.pbtxt", kGoodConfig);
    WriteFile(root_ / "good" / "1" / "model.pt", "v1");
    WriteFile(root_ / "good" / "2" / "model.pt", "v2");
    WriteFile(root_ / "badconfig" / "config.pbtxt", "platform: NOPE");
    WriteFile(root_ / "noversion" / "config.pbtxt", kGoodConfig);
    WriteFile(root_ / "brokenweights" / "config.pbtxt", kGoodConfig);
    WriteFile(root_ / "brokenweights" / "1" / "model.pt", "corrupt");
  }

  void TearDown() override {
    if (core_) {
      EXPECT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(10)));
    }
    repository_.reset();
  }

  void CreateRepository() {
    ModelRepository::Options options;
    options.root = root_.string();
    options.default_model = "good";
    options.clock = RealClock::Get();
    options.metrics = &metrics_;
    options.loader = [this](const v1::ModelConfig& config,
                            const std::string& weights_path,
                            const std::string& device)
        -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
      std::ifstream file(weights_path);
      std::string content;
      file >> content;
      if (content == "corrupt") {
        return absl::InvalidArgumentError(weights_path + ": not a state dict");
      }
      return std::make_unique<FakeModel>(state_, int(config.input().height()),
                                         int(config.input().width()));
    };
    auto repository = ModelRepository::Create(options);
    ASSERT_TRUE(repository.ok()) << repository.status();
    repository_ = *std::move(repository);
    EXPECT_FALSE(repository_->IsReady()) << "ready before loading";
    repository_->LoadAll();
    core_ = std::make_unique<InferenceCore>(repository_.get(), &pool_,
                                            &metrics_, RealClock::Get());
    processor_ = std::make_unique<SegmentProcessor>(
        SegmentProcessor::Options{.max_image_pixels = 10000}, core_.get());
  }

  // Runs one job to completion.
  absl::StatusOr<SegmentResult> Run(SegmentJob job) {
    absl::Notification done;
    absl::StatusOr<SegmentResult> out;
    processor_->Process(
        std::move(job),
        [&](absl::StatusOr<std::vector<SegmentResult>> results) {
          out = OnlyResult(std::move(results));
          done.Notify();
        });
    done.WaitForNotification();
    return out;
  }

  // A raw gray image whose pixels all equal `value` (the fake model labels
  // every pixel with the first normalized input value).
  SegmentJob GrayJob(int width, int height, uint8_t value) {
    pixels_.emplace_back(size_t(width) * height, char(value));
    SegmentJob job;
    job.images.resize(1);
    job.images[0].raw = true;
    job.images[0].raw_width = width;
    job.images[0].raw_height = height;
    job.images[0].raw_format = PixelFormat::kGray8;
    job.images[0].raw_data = pixels_.back();
    job.mask_format = MaskFormat::kRaw;
    return job;
  }

  fs::path root_;
  prometheus::Registry registry_;
  Metrics metrics_{&registry_};
  std::shared_ptr<FakeModelState> state_ = std::make_shared<FakeModelState>();
  ThreadPool pool_{2};
  std::deque<std::string> pixels_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<InferenceCore> core_;
  std::unique_ptr<SegmentProcessor> processor_;
};

TEST_F(ServerComponentsTest, ReportsEachModelsState) {
  CreateRepository();
  EXPECT_TRUE(repository_->IsReady()) << "the default model 'good' loaded";
  auto good = repository_->Describe("good");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->state, ModelState::kReady);
  ASSERT_EQ(good->versions.size(), 2u);
  EXPECT_EQ(good->latest_version, 2);
  EXPECT_THAT(good->devices, ::testing::ElementsAre("cpu"));
  EXPECT_EQ(good->parameter_count, 42);

  auto bad = repository_->Describe("badconfig");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->state, ModelState::kUnavailable);
  EXPECT_THAT(bad->reason, HasSubstr("config.pbtxt"));

  auto none = repository_->Describe("noversion");
  EXPECT_THAT(none->reason, HasSubstr("no version directory"));

  auto broken = repository_->Find("brokenweights", 0);
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(broken.status().message()),
              HasSubstr("not a state dict"));
  EXPECT_EQ(repository_->List().size(), 4u);
}

TEST_F(ServerComponentsTest, FindsVersions) {
  CreateRepository();
  EXPECT_EQ((*repository_->Find("", 0))->version(), 2);
  EXPECT_EQ((*repository_->Find("good", 1))->version(), 1);
  EXPECT_EQ(repository_->Find("good", 3).status().code(),
            absl::StatusCode::kNotFound);
  auto unknown = repository_->Find("nope", 0);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("good"));
}

// Names are looked up, never opened: hostile ones are unknown models.
TEST_F(ServerComponentsTest, HostileNamesAreUnknownModels) {
  CreateRepository();
  const std::vector<std::string> names = {"../good", "/etc/passwd",
                                          std::string("go\0od", 5), "good/1",
                                          std::string(5000, '.')};
  for (const std::string& name : names) {
    auto found = repository_->Find(name, 0);
    EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound) << name;
    EXPECT_LT(found.status().message().size(), 400u);
  }
}

TEST_F(ServerComponentsTest, SymlinksOutOfTheRepositoryAreRefused) {
  const fs::path outside = FreshTestDir("server_components_outside");
  WriteFile(outside / "config.pbtxt", kGoodConfig);
  WriteFile(outside / "1" / "model.pt", "v1");
  fs::create_directory_symlink(outside, root_ / "escaped");
  WriteFile(root_ / "partly" / "config.pbtxt", kGoodConfig);
  WriteFile(root_ / "partly" / "1" / "model.pt", "v1");
  fs::create_directories(root_ / "partly" / "2");
  fs::create_symlink(outside / "1" / "model.pt",
                     root_ / "partly" / "2" / "model.pt");
  CreateRepository();

  auto escaped = repository_->Describe("escaped");
  ASSERT_TRUE(escaped.ok());
  EXPECT_EQ(escaped->state, ModelState::kUnavailable);
  EXPECT_THAT(escaped->reason, HasSubstr("outside the model repository"));

  auto partly = repository_->Describe("partly");
  ASSERT_TRUE(partly.ok());
  EXPECT_EQ(partly->latest_version, 1) << "version 2 leaves the repository";
  auto second = repository_->Find("partly", 2);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("outside the model repository"));
}

TEST_F(ServerComponentsTest, DefaultModelMustExist) {
  ModelRepository::Options options;
  options.root = root_.string();
  options.default_model = "missing";
  auto repository = ModelRepository::Create(options);
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ServerComponentsTest, SegmentsAtTheImageSize) {
  CreateRepository();
  SegmentJob job = GrayJob(50, 20, 3);
  job.with_confidence = true;
  auto result = Run(std::move(job));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model, "good");
  EXPECT_EQ(result->version, 2);
  EXPECT_EQ(result->width, 50);
  EXPECT_EQ(result->height, 20);
  ASSERT_EQ(result->mask.size(), 1000u);
  EXPECT_EQ(result->mask[0], 3);
  EXPECT_EQ(result->confidence.size(), 1000u);
  ASSERT_EQ(result->class_stats.size(), 1u);
  EXPECT_EQ(result->class_stats[0].name, "three");
  EXPECT_EQ(result->class_stats[0].pixels, 1000u);
  EXPECT_EQ(result->batch_size, 1);
}

// A JPEG much larger than the 32x32 input decodes at 1/8 scale; its mask
// keeps the image's size, and the labels match decoding it whole (both
// average the image down: the fake labels by the input's first byte).
TEST_F(ServerComponentsTest, LargeJpegsDecodeReducedAndKeepTheirSize) {
  CreateRepository();
  cv::Mat gray(384, 512, CV_8UC1, cv::Scalar(100));
  gray(cv::Rect(0, 0, 512, 8)).setTo(200);
  std::vector<uchar> jpeg;
  ASSERT_TRUE(cv::imencode(".jpg", gray, jpeg, {cv::IMWRITE_JPEG_QUALITY, 95}));
  pixels_.emplace_back(jpeg.begin(), jpeg.end());
  std::vector<int> labels;
  for (bool reduced : {true, false}) {
    processor_ = std::make_unique<SegmentProcessor>(
        SegmentProcessor::Options{.reduced_jpeg_decode = reduced}, core_.get());
    SegmentJob job;
    job.images.resize(1);
    job.images[0].encoded = pixels_.back();
    job.mask_format = MaskFormat::kRaw;
    absl::StatusOr<SegmentResult> result = Run(std::move(job));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->width, 512);
    EXPECT_EQ(result->height, 384);
    ASSERT_EQ(result->mask.size(), 512u * 384);
    labels.push_back(uint8_t(result->mask[0]));
  }
  // Rows 0..11 of the image make the input's first row: 8 of 200, 4 of 100.
  EXPECT_NEAR(labels[0], 167, 2);
  EXPECT_NEAR(labels[1], 167, 2);
}

TEST_F(ServerComponentsTest, RefusesBadImagesWithReasons) {
  CreateRepository();
  SegmentJob short_data = GrayJob(10, 10, 1);
  short_data.images[0].raw_data = short_data.images[0].raw_data.substr(0, 50);
  EXPECT_EQ(Run(std::move(short_data)).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto too_big = Run(GrayJob(200, 100, 1));  // 20000 > 10000 pixels.
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);

  SegmentJob garbage;

  garbage.images.resize(1);
  garbage.images[0].encoded = "not an image";
  auto undecodable = Run(std::move(garbage));
  EXPECT_EQ(undecodable.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(undecodable.status().message()), HasSubstr("PNG"));

  SegmentJob unknown = GrayJob(4, 4, 1);
  unknown.model = "nope";
  EXPECT_EQ(Run(std::move(unknown)).status().code(),
            absl::StatusCode::kNotFound);
  // Every request is answered and accounted for.
  EXPECT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(10)));
}

TEST_F(ServerComponentsTest, ModelFailureIsInternal) {
  CreateRepository();
  {
    absl::MutexLock lock(&state_->mu);
    state_->error = absl::InternalError("boom");
  }
  auto result = Run(GrayJob(8, 8, 1));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  {
    absl::MutexLock lock(&state_->mu);
    state_->error = absl::OkStatus();
    state_->throw_next = true;
  }
  auto thrown = Run(GrayJob(8, 8, 1));
  EXPECT_EQ(thrown.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(thrown.status().message()),
              HasSubstr("fake model exploded"));
  EXPECT_TRUE(Run(GrayJob(8, 8, 1)).ok()) << "the next batch succeeds";
}

TEST_F(ServerComponentsTest, ExpiredBeforePreprocessing) {
  CreateRepository();
  SegmentJob job = GrayJob(8, 8, 1);
  job.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_EQ(Run(std::move(job)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

// With eager_dispatch a lone request goes at once; requests that fail before
// the queue must not leave the batcher waiting for them (10 s here).
TEST_F(ServerComponentsTest, EagerDispatchIsNotHeldUpByFailedRequests) {
  WriteFile(root_ / "eager" / "config.pbtxt",
            std::string(kGoodConfig) +
                "dynamic_batching { max_queue_delay_us: 10000000 "
                "eager_dispatch: true }");
  WriteFile(root_ / "eager" / "1" / "model.pt", "v1");
  CreateRepository();
  SegmentJob expired = GrayJob(8, 8, 1);
  expired.model = "eager";
  expired.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_EQ(Run(std::move(expired)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  SegmentJob garbage;
  garbage.images.resize(1);
  garbage.model = "eager";
  garbage.images[0].encoded = "not an image";
  EXPECT_EQ(Run(std::move(garbage)).status().code(),
            absl::StatusCode::kInvalidArgument);

  SegmentJob job = GrayJob(8, 8, 1);
  job.model = "eager";
  absl::StatusOr<SegmentResult> result = Run(std::move(job));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_LT(result->queue_time, absl::Seconds(5));
}

TEST_F(ServerComponentsTest, ShutdownRefusesNewRequests) {
  CreateRepository();
  repository_->Shutdown();
  EXPECT_EQ(Run(GrayJob(8, 8, 1)).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(ServerComponentsTest, MetricsAreExposed) {
  CreateRepository();
  ASSERT_TRUE(Run(GrayJob(8, 8, 1)).ok());
  SegmentJob unknown = GrayJob(4, 4, 1);
  unknown.model = "nope";
  Run(std::move(unknown)).IgnoreError();

  ASSERT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(10)));
  const std::string text =
      prometheus::TextSerializer().Serialize(registry_.Collect());
  EXPECT_THAT(text, HasSubstr("segserve_requests_total{code=\"OK\",model="
                              "\"good\",version=\"2\"} 1"));
  EXPECT_THAT(text, HasSubstr("segserve_requests_total{code=\"NOT_FOUND\","
                              "model=\"nope\",version=\"\"} 1"));
  for (const char* name :
       {"segserve_request_duration_seconds_bucket",
        "segserve_queue_duration_seconds_count",
        "segserve_preprocess_duration_seconds_count",
        "segserve_inference_duration_seconds_count",
        "segserve_postprocess_duration_seconds_count",
        "segserve_batch_size_count", "segserve_queue_depth",
        "segserve_inflight_requests 0",
        "segserve_model_ready{model=\"good\",version=\"2\"} 1"}) {
    EXPECT_THAT(text, HasSubstr(name));
  }
}

}  // namespace
}  // namespace segserve
