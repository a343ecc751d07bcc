// SLIDE requests through the real repository, batcher, instances and pool,
// with a fake model behind the ModelLoader seam whose logits say, per
// pixel, the class of the value it was given: a blended mask must then
// reproduce the image exactly, wherever the tiles were cut.
#include <algorithm>
#include <deque>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/slide_window.h"
#include "prometheus/registry.h"
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

// Tiles of 32 x 32 every 20 pixels, run at the crop size.
constexpr char kSlideConfig[] = R"pb(
  platform: BUILTIN
  architecture: "sgcpnet"
  num_classes: 4
  input {
    height: 32
    width: 32
    resize: SLIDE
    stride_height: 20
    stride_width: 20
    mean: [ 0, 0, 0 ]
    std: [ 1, 1, 1 ]
  }
  max_batch_size: 4
)pb";

class SlideProcessorTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (core_) {
      EXPECT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(10)));
    }
    repository_.reset();
  }

  void Serve(const std::string& config = kSlideConfig) {
    root_ = FreshTestDir("slide_processor");
    WriteFile(root_ / "slide" / "config.pbtxt", config);
    WriteFile(root_ / "slide" / "1" / "model.pt", "weights");
    ModelRepository::Options options;
    options.root = root_.string();
    options.default_model = "slide";
    options.clock = RealClock::Get();
    options.metrics = &metrics_;
    options.loader = [this](const v1::ModelConfig& config, const std::string&,
                            const std::string&)
        -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
      return std::make_unique<FakeModel>(state_, int(config.input().height()),
                                         int(config.input().width()),
                                         int(config.num_classes()));
    };
    auto repository = ModelRepository::Create(options);
    ASSERT_TRUE(repository.ok()) << repository.status();
    repository_ = *std::move(repository);
    repository_->LoadAll();
    core_ = std::make_unique<InferenceCore>(repository_.get(), &pool_,
                                            &metrics_, RealClock::Get());
    processor_ = std::make_unique<SegmentProcessor>(
        SegmentProcessor::Options{.max_image_pixels = 1 << 20}, core_.get());
  }

  void Start(SegmentJob job, absl::StatusOr<SegmentResult>* out,
             absl::Notification* done) {
    processor_->Process(
        std::move(job),
        [out, done](absl::StatusOr<std::vector<SegmentResult>> results) {
          *out = OnlyResult(std::move(results));
          done->Notify();
        });
  }

  absl::StatusOr<SegmentResult> Run(SegmentJob job) {
    absl::Notification done;
    absl::StatusOr<SegmentResult> out;
    Start(std::move(job), &out, &done);
    done.WaitForNotification();
    return out;
  }

  // A gray image whose value at (x, y) is (x / 7 + 3 * (y / 5)) % 4: class
  // boundaries everywhere, inside tiles and across them.
  SegmentJob PatternJob(int width, int height) {
    std::string& pixels = pixels_.emplace_back(size_t(width) * height, '\0');
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        pixels[size_t(y) * width + x] = char(Pattern(x, y));
      }
    }
    SegmentJob job;
    job.images.resize(1);
    job.images[0].raw = true;
    job.images[0].raw_width = width;
    job.images[0].raw_height = height;
    job.images[0].raw_format = PixelFormat::kGray8;
    job.images[0].raw_data = pixels;
    job.mask_format = MaskFormat::kRaw;
    return job;
  }
  static int Pattern(int x, int y) { return (x / 7 + 3 * (y / 5)) % 4; }

  int TilesRun() {
    const std::vector<int> sizes = state_->BatchSizes();
    return std::accumulate(sizes.begin(), sizes.end(), 0);
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

TEST_F(SlideProcessorTest, BlendedMaskReproducesTheImageAtFullSize) {
  Serve();
  SegmentJob job = PatternJob(101, 67);
  job.with_confidence = true;
  absl::StatusOr<SegmentResult> result = Run(std::move(job));
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->width, 101);
  ASSERT_EQ(result->height, 67);
  ASSERT_EQ(result->mask.size(), 101u * 67u);
  for (int y = 0; y < 67; ++y) {
    for (int x = 0; x < 101; ++x) {
      ASSERT_EQ(int(uint8_t(result->mask[size_t(y) * 101 + x])), Pattern(x, y))
          << "at " << x << "," << y;
    }
  }
  // Columns at 0, 20, 40, 60 and 69 (moved back to end at 101), rows at 0,
  // 20 and 35.
  PreprocessOptions plan = repository_->Find("", 0).value()->preprocess();
  EXPECT_EQ(CountSlideTiles(101, 67, plan), 15);
  EXPECT_EQ(result->tiles, 15);
  EXPECT_EQ(TilesRun(), 15);
  EXPECT_EQ(result->batch_size, 4) << "the tiles fill batches";
  // One-hot logits averaged: p = e / (e + 3) everywhere.
  ASSERT_EQ(result->confidence.size(), 101u * 67u);
  const uint8_t expected = uint8_t(std::lround(255 * M_E / (M_E + 3)));
  EXPECT_EQ(uint8_t(result->confidence[0]), expected);
  EXPECT_EQ(uint8_t(result->confidence[50 * 101 + 77]), expected);
  uint64_t counted = 0;
  for (const ClassCount& stat : result->class_stats) counted += stat.pixels;
  EXPECT_EQ(counted, 101u * 67u);
}

TEST_F(SlideProcessorTest, ImageSmallerThanTheCropIsPadded) {
  Serve();
  absl::StatusOr<SegmentResult> result = Run(PatternJob(21, 9));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tiles, 1);
  for (int y = 0; y < 9; ++y) {
    for (int x = 0; x < 21; ++x) {
      ASSERT_EQ(int(uint8_t(result->mask[size_t(y) * 21 + x])), Pattern(x, y));
    }
  }
}

TEST_F(SlideProcessorTest, CropLargerThanTheInputIsScaled) {
  // 64 x 64 crops run at 32 x 32: labels come back at half resolution, so
  // only blocks of 2 x 2 equal pixels survive exactly; use a coarse image.
  std::string config = kSlideConfig;
  config.replace(config.find("stride_height: 20"), 17,
                 "crop_height: 64 crop_width: 64 stride_height: 40");
  config.replace(config.find("stride_width: 20"), 16, "stride_width: 40");
  Serve(config);
  std::string& pixels = pixels_.emplace_back(size_t(128) * 96, '\0');
  for (int y = 0; y < 96; ++y) {
    for (int x = 0; x < 128; ++x) {
      pixels[size_t(y) * 128 + x] = char((x / 32 + y / 32) % 4);
    }
  }
  SegmentJob job;
  job.images.resize(1);
  job.images[0].raw = true;
  job.images[0].raw_width = 128;
  job.images[0].raw_height = 96;
  job.images[0].raw_format = PixelFormat::kGray8;
  job.images[0].raw_data = pixels;
  job.mask_format = MaskFormat::kRaw;
  absl::StatusOr<SegmentResult> result = Run(std::move(job));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tiles, 3 * 2);
  int wrong = 0;
  for (int y = 0; y < 96; ++y) {
    for (int x = 0; x < 128; ++x) {
      wrong += int(uint8_t(result->mask[size_t(y) * 128 + x])) !=
               (x / 32 + y / 32) % 4;
    }
  }
  // Bilinear upsampling blurs only the boundaries of the 32-pixel blocks.
  EXPECT_LT(wrong, 128 * 96 / 20);
}

TEST_F(SlideProcessorTest, TilesOfSeveralRequestsShareBatches) {
  Serve(std::string(kSlideConfig) +
        "dynamic_batching { max_queue_delay_us: 1000000 }");
  // Hold the instance in its first batch while two requests queue.
  auto release = std::make_shared<absl::Notification>();
  {
    absl::MutexLock lock(&state_->mu);
    state_->release = release;
  }
  absl::Notification first_done, second_done, third_done;
  absl::StatusOr<SegmentResult> first, second, third;
  Start(PatternJob(32, 32), &first, &first_done);  // 1 tile.
  state_->AwaitBatchesStarted(1);
  Start(PatternJob(52, 32), &second, &second_done);  // 2 tiles.
  Start(PatternJob(52, 32), &third, &third_done);    // 2 tiles.
  while (repository_->Find("", 0).value()->queue_depth() < 4) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  release->Notify();
  first_done.WaitForNotification();
  second_done.WaitForNotification();
  third_done.WaitForNotification();
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_THAT(state_->BatchSizes(), ::testing::ElementsAre(1, 4))
      << "the four tiles of two requests went as one batch";
  EXPECT_EQ(second->tiles, 2);
  EXPECT_EQ(second->batch_size, 4);
}

TEST_F(SlideProcessorTest, QueueLimitCountsTiles) {
  Serve(std::string(kSlideConfig) + "dynamic_batching { max_queue_size: 6 }");
  // 101 x 67 needs 15 tiles: more than the queue could ever hold.
  absl::StatusOr<SegmentResult> refused = Run(PatternJob(101, 67));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("needs 15 tiles"));
  EXPECT_EQ(TilesRun(), 0);

  auto release = std::make_shared<absl::Notification>();
  {
    absl::MutexLock lock(&state_->mu);
    state_->release = release;
  }
  // 72 x 52 -> 3 x 2 = 6 tiles: 4 run (held), 2 stay queued; 5 more do not
  // fit beside them.
  absl::Notification held_done;
  absl::StatusOr<SegmentResult> held;
  Start(PatternJob(72, 52), &held, &held_done);
  state_->AwaitBatchesStarted(1);
  absl::StatusOr<SegmentResult> full = Run(PatternJob(112, 32));  // 5 tiles.
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  release->Notify();
  held_done.WaitForNotification();
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->tiles, 6);
  EXPECT_EQ(TilesRun(), 6) << "none of the refused request's tiles ran";
}

// Deadline admission counts a request's tiles, but no more than a request
// may have: an image of too many tiles gets the count (INVALID_ARGUMENT),
// not advice to retry elsewhere (RESOURCE_EXHAUSTED) that cannot help.
TEST_F(SlideProcessorTest, DeadlineAdmissionLeavesTooManyTilesToTheLimit) {
  Serve(std::string(kSlideConfig) + "dynamic_batching { max_queue_size: 6 }");
  {
    absl::MutexLock lock(&state_->mu);
    state_->delay = absl::Milliseconds(50);
  }
  ASSERT_TRUE(Run(PatternJob(32, 32)).ok()) << "the batch time is known now";
  // 1000 x 1000: 50 x 50 tiles, about 125 s of batches; 6 take 0.3 s.
  SegmentJob big = PatternJob(1000, 1000);
  big.deadline = absl::Now() + absl::Seconds(2);
  absl::StatusOr<SegmentResult> refused = Run(std::move(big));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument)
      << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("needs 2500 tiles"));
  // A request that fits but would miss its deadline is still refused at
  // arrival: 6 tiles in 1 ms.
  SegmentJob late = PatternJob(72, 52);
  late.deadline = absl::Now() + absl::Milliseconds(1);
  EXPECT_EQ(Run(std::move(late)).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(SlideProcessorTest, AFailedTileDropsItsSiblings) {
  Serve();
  {
    absl::MutexLock lock(&state_->mu);
    state_->error = absl::InternalError("boom");
  }
  absl::StatusOr<SegmentResult> result = Run(PatternJob(101, 67));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("boom"));
  EXPECT_THAT(state_->BatchSizes(), ::testing::ElementsAre(4))
      << "the 11 tiles still queued were dropped, not run";
  {
    absl::MutexLock lock(&state_->mu);
    state_->error = absl::OkStatus();
  }
  EXPECT_TRUE(Run(PatternJob(40, 40)).ok());
}

TEST_F(SlideProcessorTest, ExpiredTilesAreDroppedTogether) {
  Serve();
  auto release = std::make_shared<absl::Notification>();
  {
    absl::MutexLock lock(&state_->mu);
    state_->release = release;
  }
  SegmentJob job = PatternJob(101, 67);
  job.deadline = absl::Now() + absl::Milliseconds(300);
  absl::Notification done;
  absl::StatusOr<SegmentResult> result;
  Start(std::move(job), &result, &done);
  state_->AwaitBatchesStarted(1);
  absl::SleepFor(absl::Milliseconds(400));
  release->Notify();
  done.WaitForNotification();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(TilesRun(), 4) << "only the batch already running ran";
}

TEST_F(SlideProcessorTest, CancelledTilesAreDropped) {
  Serve();
  auto release = std::make_shared<absl::Notification>();
  {
    absl::MutexLock lock(&state_->mu);
    state_->release = release;
  }
  SegmentJob job = PatternJob(101, 67);
  job.cancelled = std::make_shared<std::atomic<bool>>(false);
  CancelFlag cancel = job.cancelled;
  absl::Notification done;
  absl::StatusOr<SegmentResult> result;
  Start(std::move(job), &result, &done);
  state_->AwaitBatchesStarted(1);
  cancel->store(true);
  release->Notify();
  done.WaitForNotification();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(TilesRun(), 4);
}

}  // namespace
}  // namespace segserve
