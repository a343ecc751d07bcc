#include "client/request_util.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/mask_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"

namespace segserve {
namespace {

using ::testing::HasSubstr;

TEST(MakeEncodedRequestTest, CarriesTheBytesAndDefaults) {
  const v1::SegmentRequest request =
      MakeEncodedRequest(std::string("\xff\xd8\xff\x00jpeg", 8));
  ASSERT_TRUE(request.image().has_encoded());
  EXPECT_EQ(request.image().encoded(), std::string("\xff\xd8\xff\x00jpeg", 8));
  EXPECT_EQ(request.model(), "");
  EXPECT_EQ(request.mask_encoding(), v1::PNG);
}

TEST(MakeRawRequestTest, RgbIsPackedRowMajor) {
  cv::Mat rgb(2, 3, CV_8UC3);
  for (int i = 0; i < 18; ++i) rgb.data[i] = static_cast<uint8_t>(i);
  absl::StatusOr<v1::SegmentRequest> request = MakeRawRequest(rgb);
  ASSERT_TRUE(request.ok()) << request.status();
  const v1::RawImage& raw = request->image().raw();
  EXPECT_EQ(raw.width(), 3u);
  EXPECT_EQ(raw.height(), 2u);
  EXPECT_EQ(raw.format(), v1::RGB8);
  ASSERT_EQ(raw.data().size(), 18u);
  EXPECT_EQ(raw.data()[17], 17);
}

TEST(MakeRawRequestTest, NonContinuousImageIsPacked) {
  cv::Mat big(10, 10, CV_8UC3);
  for (int y = 0; y < 10; ++y) {
    for (int x = 0; x < 10; ++x) {
      big.at<cv::Vec3b>(y, x) = cv::Vec3b(y, x, 7);
    }
  }
  const cv::Mat roi = big(cv::Rect(2, 3, 4, 5));
  absl::StatusOr<v1::SegmentRequest> request = MakeRawRequest(roi, v1::BGR8);
  ASSERT_TRUE(request.ok()) << request.status();
  const std::string& data = request->image().raw().data();
  ASSERT_EQ(data.size(), 4u * 5 * 3);
  // Pixel (x=1, y=2) of the ROI is (x=3, y=5) of the big image.
  const size_t at = (2 * 4 + 1) * 3;
  EXPECT_EQ(data[at], 5);
  EXPECT_EQ(data[at + 1], 3);
  EXPECT_EQ(request->image().raw().format(), v1::BGR8);
}

TEST(MakeRawRequestTest, Gray) {
  absl::StatusOr<v1::SegmentRequest> request =
      MakeRawRequest(cv::Mat(4, 5, CV_8UC1, cv::Scalar(9)), v1::GRAY8);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->image().raw().data(), std::string(20, '\x09'));
}

TEST(MakeRawRequestTest, MismatchesAreRefused) {
  EXPECT_EQ(MakeRawRequest(cv::Mat()).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status status = MakeRawRequest(cv::Mat(2, 2, CV_8UC1)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("RGB8"));
  EXPECT_FALSE(MakeRawRequest(cv::Mat(2, 2, CV_8UC3), v1::GRAY8).ok());
  EXPECT_FALSE(MakeRawRequest(cv::Mat(2, 2, CV_16UC3)).ok());
  EXPECT_FALSE(
      MakeRawRequest(cv::Mat(2, 2, CV_8UC3), v1::PIXEL_FORMAT_UNSPECIFIED)
          .ok());
}

TEST(DecodeMaskToMatTest, EveryEncoding) {
  cv::Mat labels = (cv::Mat_<uint16_t>(2, 3) << 0, 1, 2, 300, 300, 5);
  const std::pair<v1::MaskEncoding, MaskFormat> encodings[] = {
      {v1::PNG, MaskFormat::kPng},
      {v1::RAW, MaskFormat::kRaw},
      {v1::RLE, MaskFormat::kRle}};
  for (const auto& [encoding, format] : encodings) {
    v1::Mask mask;
    mask.set_width(3);
    mask.set_height(2);
    mask.set_encoding(encoding);
    mask.set_data(*EncodeMask(labels, format));
    absl::StatusOr<cv::Mat> decoded = DecodeMaskToMat(mask);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->type(), CV_16UC1);
    EXPECT_EQ(cv::countNonZero(*decoded != labels), 0);
  }
}

TEST(DecodeMaskToMatTest, BadMasksAreRefused) {
  v1::Mask mask;
  mask.set_width(2);
  mask.set_height(2);
  mask.set_encoding(v1::RAW);
  mask.set_data("abc");
  EXPECT_EQ(DecodeMaskToMat(mask).status().code(),
            absl::StatusCode::kInvalidArgument);
  mask.set_width(0);
  EXPECT_EQ(DecodeMaskToMat(mask).status().code(),
            absl::StatusCode::kInvalidArgument);
  mask.set_width(1);
  mask.set_height(3);
  mask.set_encoding(static_cast<v1::MaskEncoding>(9));
  absl::Status status = DecodeMaskToMat(mask).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("PNG, RAW, RLE"));
}

TEST(DecodeConfidenceToMatTest, ReadsBytesOrSaysWhyNot) {
  v1::Mask mask;
  mask.set_width(2);
  mask.set_height(1);
  EXPECT_EQ(DecodeConfidenceToMat(mask).status().code(),
            absl::StatusCode::kNotFound);
  mask.set_confidence("\x10\xff");
  absl::StatusOr<cv::Mat> confidence = DecodeConfidenceToMat(mask);
  ASSERT_TRUE(confidence.ok()) << confidence.status();
  EXPECT_EQ(confidence->at<uint8_t>(0, 1), 255);
  mask.set_confidence("\x10");
  EXPECT_EQ(DecodeConfidenceToMat(mask).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segserve
