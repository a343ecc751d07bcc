#include "model/slide_window.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "opencv2/core.hpp"

namespace segserve {
namespace {

PreprocessOptions Slide(int crop, int stride, int input = 0) {
  PreprocessOptions options;
  options.resize = PreprocessOptions::Resize::kSlide;
  options.height = options.width = input > 0 ? input : crop;
  options.crop_height = options.crop_width = crop;
  options.stride_height = options.stride_width = stride;
  options.mean = {0, 0, 0};
  options.std = {1, 1, 1};
  return options;
}

TEST(PlanSlideTilesTest, FollowsMmsegGrid) {
  // 1100 wide, crop 512, stride 341: (1100 - 512 + 340) / 341 + 1 = 3
  // columns at 0, 341 and 682 -> moved back to 588 (ends at the edge).
  const std::vector<SlideTile> tiles =
      PlanSlideTiles(1100, 512, Slide(512, 341));
  ASSERT_EQ(tiles.size(), 3u);
  EXPECT_EQ(tiles[0].x, 0);
  EXPECT_EQ(tiles[1].x, 341);
  EXPECT_EQ(tiles[2].x, 588);
  for (const SlideTile& tile : tiles) {
    EXPECT_EQ(tile.y, 0);
    EXPECT_EQ(tile.width, 512);
    EXPECT_EQ(tile.height, 512);
  }
  EXPECT_EQ(CountSlideTiles(1100, 512, Slide(512, 341)), 3);
}

TEST(PlanSlideTilesTest, CoversEveryPixelRowMajor) {
  const PreprocessOptions options = Slide(64, 40);
  const int width = 203;
  const int height = 150;
  const std::vector<SlideTile> tiles = PlanSlideTiles(width, height, options);
  EXPECT_EQ(int(tiles.size()), CountSlideTiles(width, height, options));
  cv::Mat covered(height, width, CV_8U, cv::Scalar(0));
  for (size_t i = 0; i < tiles.size(); ++i) {
    const SlideTile& tile = tiles[i];
    EXPECT_EQ(tile.width, 64);
    EXPECT_EQ(tile.height, 64);
    EXPECT_LE(tile.x + tile.width, width);
    EXPECT_LE(tile.y + tile.height, height);
    if (i > 0 && tiles[i - 1].y == tile.y) {
      EXPECT_GT(tile.x, tiles[i - 1].x);
    }
    covered(cv::Rect(tile.x, tile.y, tile.width, tile.height)) = 1;
  }
  EXPECT_EQ(cv::countNonZero(covered), width * height);
}

TEST(PlanSlideTilesTest, ImageSmallerThanCropIsOneShortTile) {
  const std::vector<SlideTile> tiles =
      PlanSlideTiles(300, 200, Slide(512, 341));
  ASSERT_EQ(tiles.size(), 1u);
  EXPECT_EQ(tiles[0].x, 0);
  EXPECT_EQ(tiles[0].y, 0);
  EXPECT_EQ(tiles[0].width, 300);
  EXPECT_EQ(tiles[0].height, 200);
}

// Tile inputs are HWC bytes, 64 x 64 x 3 here.
uint8_t At(const std::vector<uint8_t>& input, int y, int x, int c) {
  return input[(size_t(y) * 64 + x) * 3 + c];
}

TEST(PreprocessTileTest, CopiesTheTileAndPadsAShortOne) {
  cv::Mat rgb(100, 120, CV_8UC3);
  cv::randu(rgb, 0, 256);
  const PreprocessOptions options = Slide(64, 32);
  std::vector<uint8_t> input(64 * 64 * 3, 0xab);
  const SlideTile tile{40, 20, 64, 64};
  ContentRegion region = PreprocessTile(rgb, tile, options, input.data());
  EXPECT_EQ(region.width, 64);
  EXPECT_EQ(region.height, 64);
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64; ++x) {
      const cv::Vec3b pixel = rgb.at<cv::Vec3b>(20 + y, 40 + x);
      for (int c = 0; c < 3; ++c) ASSERT_EQ(At(input, y, x, c), pixel[c]);
    }
  }
  // A 30 x 50 tile of a small image: the same scale, zeros around it.
  region = PreprocessTile(rgb, {0, 0, 50, 30}, options, input.data());
  EXPECT_EQ(region.width, 50);
  EXPECT_EQ(region.height, 30);
  EXPECT_EQ(At(input, 10, 55, 0), 0);
  EXPECT_EQ(At(input, 40, 5, 2), 0);
  EXPECT_EQ(At(input, 29, 49, 1), rgb.at<cv::Vec3b>(29, 49)[1]);
}

TEST(PreprocessTileTest, ScalesACropToTheInputSize) {
  cv::Mat rgb(256, 256, CV_8UC3, cv::Scalar(10, 20, 30));
  const PreprocessOptions options = Slide(128, 64, /*input=*/64);
  std::vector<uint8_t> input(64 * 64 * 3);
  const ContentRegion region =
      PreprocessTile(rgb, {128, 128, 128, 128}, options, input.data());
  EXPECT_EQ(region.width, 64);
  EXPECT_EQ(region.height, 64);
  EXPECT_EQ(At(input, 63, 63, 2), 30);
}

// Logits {classes, h, w} where class `c` scores `value(c, y, x)`.
template <typename Value>
cv::Mat MakeLogits(int classes, int height, int width, Value value) {
  const int dims[] = {classes, height, width};
  cv::Mat logits(3, dims, CV_32F);
  for (int c = 0; c < classes; ++c) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        logits.ptr<float>(c)[y * width + x] = value(c, y, x);
      }
    }
  }
  return logits;
}

TEST(SlideBlenderTest, AveragesOverlapsAndTakesTheArgmax) {
  // Two 4-wide tiles of a 6-wide image overlap in columns 2..3. The left
  // tile says class 1 (score 3), the right class 2 (score 1): the overlap
  // averages to class 1 = 1.5, class 2 = 0.5 -> class 1.
  SlideBlender blender(6, 2, 3);
  const SlideTile left{0, 0, 4, 2};
  const SlideTile right{2, 0, 4, 2};
  const ContentRegion whole{0, 0, 4, 2};
  ASSERT_TRUE(
      blender
          .Add(left, whole,
               MakeLogits(3, 2, 4,
                          [](int c, int, int) { return c == 1 ? 3.f : 0.f; }))
          .ok());
  ASSERT_TRUE(
      blender
          .Add(right, whole,
               MakeLogits(3, 2, 4,
                          [](int c, int, int) { return c == 2 ? 1.f : 0.f; }))
          .ok());
  const cv::Mat averaged = blender.AveragedLogits();
  EXPECT_FLOAT_EQ(averaged.ptr<float>(1)[0 * 6 + 3], 1.5f);
  EXPECT_FLOAT_EQ(averaged.ptr<float>(2)[0 * 6 + 3], 0.5f);
  EXPECT_FLOAT_EQ(averaged.ptr<float>(2)[1 * 6 + 5], 1.0f);
  const BlendedMasks masks = blender.Finish(/*with_confidence=*/true);
  ASSERT_EQ(masks.labels.type(), CV_8UC1);
  const uint8_t expected[] = {1, 1, 1, 1, 2, 2};
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 6; ++x) {
      EXPECT_EQ(masks.labels.at<uint8_t>(y, x), expected[x]) << x;
    }
  }
  // Column 0: logits (0, 3, 0) -> p = e^3 / (e^3 + 2).
  const double p = std::exp(3.0) / (std::exp(3.0) + 2.0);
  EXPECT_EQ(masks.confidence.at<uint8_t>(0, 0), std::lround(255 * p));
}

TEST(SlideBlenderTest, TiesGoToTheLowestClass) {
  SlideBlender blender(2, 1, 2);
  ASSERT_TRUE(blender
                  .Add({0, 0, 2, 1}, {0, 0, 2, 1},
                       MakeLogits(2, 1, 2, [](int, int, int) { return 0.5f; }))
                  .ok());
  EXPECT_EQ(blender.Finish(false).labels.at<uint8_t>(0, 1), 0);
}

TEST(SlideBlenderTest, TakesOnlyTheRegionAndResizesIt) {
  // A padded input of 4x4 whose region 2x2 holds the tile; the tile is 4x4
  // in the image (crop 8 at input 4 -> half scale): upsampled bilinearly.
  SlideBlender blender(4, 4, 1);
  const cv::Mat logits = MakeLogits(
      1, 4, 4, [](int, int y, int x) { return y < 2 && x < 2 ? 2.f : 99.f; });
  ASSERT_TRUE(blender.Add({0, 0, 4, 4}, {0, 0, 2, 2}, logits).ok());
  const cv::Mat averaged = blender.AveragedLogits();
  for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(averaged.ptr<float>(0)[i], 2.f);
}

TEST(SlideBlenderTest, RefusesLogitsOfTheWrongShape) {
  SlideBlender blender(8, 8, 3);
  const cv::Mat two_classes =
      MakeLogits(2, 8, 8, [](int, int, int) { return 0.f; });
  EXPECT_FALSE(blender.Add({0, 0, 8, 8}, {0, 0, 8, 8}, two_classes).ok());
  EXPECT_FALSE(blender.Add({0, 0, 8, 8}, {0, 0, 8, 8}, cv::Mat()).ok());
  const cv::Mat logits = MakeLogits(3, 8, 8, [](int, int, int) { return 0.f; });
  EXPECT_FALSE(blender.Add({4, 4, 8, 8}, {0, 0, 8, 8}, logits).ok());
}

TEST(SlideBlenderTest, TilesAddedFromManyThreadsSumExactly) {
  const PreprocessOptions options = Slide(16, 8);
  const std::vector<SlideTile> tiles = PlanSlideTiles(64, 64, options);
  SlideBlender blender(64, 64, 2);
  const cv::Mat ones =
      MakeLogits(2, 16, 16, [](int c, int, int) { return float(c); });
  std::vector<std::thread> threads;
  for (const SlideTile& tile : tiles) {
    threads.emplace_back([&, tile] {
      EXPECT_TRUE(blender.Add(tile, {0, 0, 16, 16}, ones).ok());
    });
  }
  for (std::thread& thread : threads) thread.join();
  const cv::Mat averaged = blender.AveragedLogits();
  for (int i = 0; i < 64 * 64; ++i) {
    ASSERT_FLOAT_EQ(averaged.ptr<float>(1)[i], 1.0f);
  }
}

}  // namespace
}  // namespace segserve
