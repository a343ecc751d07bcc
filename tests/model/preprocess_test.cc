#include "model/preprocess.h"

#include <vector>

#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

PreprocessOptions Options(int height, int width,
                          PreprocessOptions::Resize resize) {
  PreprocessOptions options;
  options.height = height;
  options.width = width;
  options.resize = resize;
  options.mean = {10, 20, 30};
  options.std = {2, 4, 5};
  return options;
}

TEST(PreprocessTest, NormalizesEachChannelIntoChwPlanes) {
  cv::Mat rgb(4, 6, CV_8UC3, cv::Scalar(50, 100, 200));
  rgb.at<cv::Vec3b>(1, 2) = cv::Vec3b(0, 0, 255);
  const auto options = Options(4, 6, PreprocessOptions::Resize::kStretch);
  std::vector<float> out(3 * 4 * 6, -1);
  ContentRegion region = Preprocess(rgb, options, out.data());
  EXPECT_EQ(region.width, 6);
  EXPECT_EQ(region.height, 4);
  EXPECT_FLOAT_EQ(out[0], (50 - 10) / 2.0f);    // R plane.
  EXPECT_FLOAT_EQ(out[24], (100 - 20) / 4.0f);  // G plane.
  EXPECT_FLOAT_EQ(out[48], (200 - 30) / 5.0f);  // B plane.
  EXPECT_FLOAT_EQ(out[1 * 6 + 2], (0 - 10) / 2.0f);
  EXPECT_FLOAT_EQ(out[48 + 1 * 6 + 2], (255 - 30) / 5.0f);
}

TEST(PreprocessTest, StretchFillsTheWholeInput) {
  cv::Mat rgb(10, 40, CV_8UC3, cv::Scalar(12, 24, 35));
  const auto options = Options(8, 8, PreprocessOptions::Resize::kStretch);
  std::vector<float> out(3 * 64);
  ContentRegion region = Preprocess(rgb, options, out.data());
  EXPECT_EQ(region.x, 0);
  EXPECT_EQ(region.width, 8);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(out[i], 1.0f, 1e-5);
}

TEST(PreprocessTest, LetterboxKeepsAspectAndPadsWithZero) {
  // A 40x10 image into 8x8: content 8 wide, 2 high, centred vertically.
  cv::Mat rgb(10, 40, CV_8UC3, cv::Scalar(12, 24, 35));
  const auto options = Options(8, 8, PreprocessOptions::Resize::kLetterbox);
  std::vector<float> out(3 * 64, -1);
  ContentRegion region = Preprocess(rgb, options, out.data());
  EXPECT_EQ(region.width, 8);
  EXPECT_EQ(region.height, 2);
  EXPECT_EQ(region.x, 0);
  EXPECT_EQ(region.y, 3);
  for (int y = 0; y < 8; ++y) {
    const bool inside = y >= 3 && y < 5;
    EXPECT_NEAR(out[y * 8], inside ? 1.0f : 0.0f, 1e-5) << y;
  }
}

// What the server queues: the resized image as bytes, zero around a
// letterbox, normalized later by the model into exactly Preprocess's floats.
TEST(PreprocessTest, BytesHoldTheResizedImageAndNormalizeToPreprocess) {
  cv::Mat rgb(30, 80, CV_8UC3);
  cv::randu(rgb, 0, 256);
  const auto options = Options(16, 16, PreprocessOptions::Resize::kLetterbox);
  std::vector<uint8_t> bytes(16 * 16 * 3, 0xab);
  const ContentRegion region = PreprocessBytes(rgb, options, bytes.data());
  EXPECT_EQ(region.x, 0);
  EXPECT_EQ(region.y, 5);
  EXPECT_EQ(region.width, 16);
  EXPECT_EQ(region.height, 6);
  cv::Mat resized;
  cv::resize(rgb, resized, cv::Size(16, 6), 0, 0, cv::INTER_AREA);
  const cv::Mat input(16, 16, CV_8UC3, bytes.data());
  EXPECT_EQ(cv::norm(input(cv::Rect(0, 5, 16, 6)), resized, cv::NORM_INF), 0);
  EXPECT_EQ(cv::countNonZero(input(cv::Rect(0, 0, 16, 5)).reshape(1)), 0);
  EXPECT_EQ(cv::countNonZero(input(cv::Rect(0, 11, 16, 5)).reshape(1)), 0);

  std::vector<float> normalized(3 * 16 * 16, -1);
  Normalize(bytes.data(), region, 16, 16, options.mean, options.std,
            normalized.data());
  std::vector<float> floats(3 * 16 * 16, -1);
  EXPECT_EQ(Preprocess(rgb, options, floats.data()).y, 5);
  EXPECT_EQ(normalized, floats);
  EXPECT_EQ(floats[2 * 256 + 1 * 16 + 7], 0.0f);  // Letterbox padding.
  const uint8_t red = input.at<cv::Vec3b>(7, 3)[0];
  EXPECT_FLOAT_EQ(floats[7 * 16 + 3], (red - 10) / 2.0f);
}

// Channels-last models get the same floats interleaved (height x width x 3),
// zero around the content region, whatever rows each call covers.
TEST(PreprocessTest, HwcLayoutHoldsTheChwFloatsInterleaved) {
  std::vector<uint8_t> bytes(12 * 10 * 3);
  cv::Mat input(10, 12, CV_8UC3, bytes.data());
  cv::randu(input, 0, 256);
  const ContentRegion region{.x = 2, .y = 1, .width = 9, .height = 7};
  const auto options = Options(10, 12, PreprocessOptions::Resize::kLetterbox);
  std::vector<float> chw(3 * 120, -1);
  Normalize(bytes.data(), region, 12, 10, options.mean, options.std,
            chw.data());
  std::vector<float> hwc(3 * 120, -1);
  NormalizeRows(bytes.data(), region, 12, 10, options.mean, options.std,
                hwc.data(), 0, 4, FloatLayout::kHwc);
  NormalizeRows(bytes.data(), region, 12, 10, options.mean, options.std,
                hwc.data(), 4, 10, FloatLayout::kHwc);
  for (int y = 0; y < 10; ++y) {
    for (int x = 0; x < 12; ++x) {
      for (int c = 0; c < 3; ++c) {
        ASSERT_EQ(hwc[(y * 12 + x) * 3 + c], chw[c * 120 + y * 12 + x])
            << x << ", " << y << ", " << c;
      }
    }
  }
  EXPECT_EQ(hwc[(0 * 12 + 5) * 3], 0.0f);   // Above the region.
  EXPECT_EQ(hwc[(3 * 12 + 11) * 3], 0.0f);  // Right of it.
  EXPECT_NE(hwc[(3 * 12 + 2) * 3], 0.0f);   // Inside.
}

TEST(PreprocessTest, MapsLabelsBackToTheImageSize) {
  // Labels at an 8x8 input whose content is rows 3..4 (letterbox above).
  cv::Mat labels(8, 8, CV_8UC1, cv::Scalar(9));
  labels(cv::Rect(0, 3, 4, 2)).setTo(1);
  labels(cv::Rect(4, 3, 4, 2)).setTo(2);
  cv::Mat mask = MapToImageSize(labels, ContentRegion{0, 3, 8, 2}, 40, 10);
  ASSERT_EQ(mask.cols, 40);
  ASSERT_EQ(mask.rows, 10);
  EXPECT_EQ(mask.at<uint8_t>(0, 0), 1);
  EXPECT_EQ(mask.at<uint8_t>(9, 19), 1);
  EXPECT_EQ(mask.at<uint8_t>(9, 20), 2);
  EXPECT_EQ(mask.at<uint8_t>(5, 39), 2);
  // The padding (label 9) never reaches the mask.
  EXPECT_EQ(cv::countNonZero(mask == 9), 0);
}

TEST(PreprocessTest, MapsSixteenBitLabels) {
  cv::Mat labels(4, 4, CV_16UC1, cv::Scalar(300));
  cv::Mat mask = MapToImageSize(labels, ContentRegion{0, 0, 4, 4}, 7, 3);
  EXPECT_EQ(mask.type(), CV_16UC1);
  EXPECT_EQ(mask.at<uint16_t>(2, 6), 300);
}

}  // namespace
}  // namespace segserve
