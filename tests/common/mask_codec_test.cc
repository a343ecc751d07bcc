#include "common/mask_codec.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

using ::testing::HasSubstr;

std::string Bytes(std::initializer_list<uint8_t> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

// A label map with runs, single pixels and ids up to max_id.
cv::Mat MakeLabels(int type, int width, int height, int max_id) {
  cv::Mat labels(height, width, type);
  cv::RNG rng(1234);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      // Blocks of equal ids, with some noise so runs are of all lengths.
      int id = ((x / 7) * 31 + (y / 5) * 17) % (max_id + 1);
      if (rng.uniform(0, 10) == 0) id = rng.uniform(0, max_id + 1);
      if (type == CV_8UC1) {
        labels.at<uint8_t>(y, x) = static_cast<uint8_t>(id);
      } else {
        labels.at<uint16_t>(y, x) = static_cast<uint16_t>(id);
      }
    }
  }
  return labels;
}

bool SameMat(const cv::Mat& a, const cv::Mat& b) {
  return a.type() == b.type() && a.size() == b.size() &&
         cv::countNonZero(a != b) == 0;
}

struct RoundTripCase {
  MaskFormat format;
  int type;
  int max_id;
};

std::string CaseName(const RoundTripCase& c) {
  const char* format = c.format == MaskFormat::kPng   ? "Png"
                       : c.format == MaskFormat::kRaw ? "Raw"
                                                      : "Rle";
  return absl::StrCat(format, c.type == CV_8UC1 ? "8" : "16");
}

// Test names and failure messages show the case by name, not as bytes.
void PrintTo(const RoundTripCase& c, std::ostream* os) { *os << CaseName(c); }

class MaskRoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(MaskRoundTripTest, DecodesWhatWasEncoded) {
  const RoundTripCase& c = GetParam();
  const cv::Mat labels = MakeLabels(c.type, 97, 61, c.max_id);
  absl::StatusOr<std::string> encoded = EncodeMask(labels, c.format);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  absl::StatusOr<cv::Mat> decoded =
      DecodeMask(*encoded, c.format, labels.cols, labels.rows);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(SameMat(*decoded, labels));
}

TEST_P(MaskRoundTripTest, AcceptsNonContinuousInput) {
  const RoundTripCase& c = GetParam();
  const cv::Mat big = MakeLabels(c.type, 50, 40, c.max_id);
  const cv::Mat roi = big(cv::Rect(3, 5, 20, 17));
  ASSERT_FALSE(roi.isContinuous());
  absl::StatusOr<std::string> encoded = EncodeMask(roi, c.format);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  absl::StatusOr<cv::Mat> decoded =
      DecodeMask(*encoded, c.format, roi.cols, roi.rows);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(SameMat(*decoded, roi));
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, MaskRoundTripTest,
    ::testing::Values(RoundTripCase{MaskFormat::kPng, CV_8UC1, 150},
                      RoundTripCase{MaskFormat::kRaw, CV_8UC1, 255},
                      RoundTripCase{MaskFormat::kRle, CV_8UC1, 255},
                      RoundTripCase{MaskFormat::kPng, CV_16UC1, 1000},
                      RoundTripCase{MaskFormat::kRaw, CV_16UC1, 65535},
                      RoundTripCase{MaskFormat::kRle, CV_16UC1, 40000}),
    [](const ::testing::TestParamInfo<RoundTripCase>& info) {
      return CaseName(info.param);
    });

TEST(MaskCodecTest, SinglePixelRoundTrips) {
  const cv::Mat labels(1, 1, CV_8UC1, cv::Scalar(9));
  for (MaskFormat format :
       {MaskFormat::kPng, MaskFormat::kRaw, MaskFormat::kRle}) {
    absl::StatusOr<std::string> encoded = EncodeMask(labels, format);
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    absl::StatusOr<cv::Mat> decoded = DecodeMask(*encoded, format, 1, 1);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(SameMat(*decoded, labels));
  }
}

TEST(MaskCodecTest, RleByteLayoutOfKnownMap) {
  // Row-major: 0 0 | 1 ... runs cross the row end.
  //   0 0 1
  //   1 1 300
  // Pairs (0,2) (1,3) (300,1); 300 = 0b10'0101100 -> 0xAC 0x02.
  cv::Mat labels = (cv::Mat_<uint16_t>(2, 3) << 0, 0, 1, 1, 1, 300);
  absl::StatusOr<std::string> encoded = EncodeMask(labels, MaskFormat::kRle);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(*encoded, Bytes({0x00, 0x02, 0x01, 0x03, 0xac, 0x02, 0x01}));

  absl::StatusOr<cv::Mat> decoded =
      DecodeMask(*encoded, MaskFormat::kRle, 3, 2);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->type(), CV_16UC1);
  EXPECT_TRUE(SameMat(*decoded, labels));
}

TEST(MaskCodecTest, RleMultiByteRunLength) {
  // 200 = 0b1'1001000 -> 0xC8 0x01.
  const cv::Mat labels(1, 200, CV_8UC1, cv::Scalar(7));
  absl::StatusOr<std::string> encoded = EncodeMask(labels, MaskFormat::kRle);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(*encoded, Bytes({0x07, 0xc8, 0x01}));
}

TEST(MaskCodecTest, RleDecodesToEightBitWhenIdsFit) {
  absl::StatusOr<cv::Mat> decoded =
      DecodeMask(Bytes({0xff, 0x01, 0x04}), MaskFormat::kRle, 2, 2);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->type(), CV_8UC1);
  EXPECT_EQ(decoded->at<uint8_t>(1, 1), 255);
}

TEST(MaskCodecTest, RawSixteenBitIsLittleEndian) {
  cv::Mat labels = (cv::Mat_<uint16_t>(1, 2) << 258, 0xabcd);
  absl::StatusOr<std::string> encoded = EncodeMask(labels, MaskFormat::kRaw);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(*encoded, Bytes({0x02, 0x01, 0xcd, 0xab}));
}

TEST(MaskCodecTest, RawEightBitIsRowMajor) {
  cv::Mat labels = (cv::Mat_<uint8_t>(2, 2) << 1, 2, 3, 4);
  absl::StatusOr<std::string> encoded = EncodeMask(labels, MaskFormat::kRaw);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(*encoded, Bytes({1, 2, 3, 4}));
}

TEST(MaskCodecTest, PngBitDepthFollowsLabelType) {
  // IHDR bit depth is byte 24 of the file.
  absl::StatusOr<std::string> png8 =
      EncodeMask(cv::Mat(4, 4, CV_8UC1, cv::Scalar(3)), MaskFormat::kPng);
  absl::StatusOr<std::string> png16 =
      EncodeMask(cv::Mat(4, 4, CV_16UC1, cv::Scalar(3)), MaskFormat::kPng);
  ASSERT_TRUE(png8.ok() && png16.ok());
  EXPECT_EQ((*png8)[24], 8);
  EXPECT_EQ((*png16)[24], 16);
  EXPECT_EQ((*png8)[25], 0) << "color type must be grayscale";
}

// Label maps of large regions are mostly rows that repeat the row above:
// the PNG must pack them into little more than the region edges.
TEST(MaskCodecTest, PngOfLargeRegionsIsCompact) {
  cv::Mat labels(512, 512, CV_8UC1, cv::Scalar(0));
  cv::rectangle(labels, {40, 60}, {300, 200}, cv::Scalar(1), cv::FILLED);
  cv::circle(labels, {380, 380}, 90, cv::Scalar(2), cv::FILLED);
  absl::StatusOr<std::string> png = EncodeMask(labels, MaskFormat::kPng);
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_LT(png->size(), 4096u) << "512x512 with two shapes";
  absl::StatusOr<cv::Mat> decoded =
      DecodeMask(*png, MaskFormat::kPng, 512, 512);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(SameMat(*decoded, labels));
}

TEST(MaskCodecTest, EncodeRejectsBadLabels) {
  for (const cv::Mat& bad :
       {cv::Mat(), cv::Mat(2, 2, CV_8UC3), cv::Mat(2, 2, CV_32SC1),
        cv::Mat(2, 2, CV_16SC1)}) {
    absl::StatusOr<std::string> encoded = EncodeMask(bad, MaskFormat::kRle);
    EXPECT_EQ(encoded.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(
      EncodeMask(cv::Mat(2, 2, CV_32FC1), MaskFormat::kPng).status().message(),
      HasSubstr("CV_8UC1 and CV_16UC1"));
}

struct MalformedCase {
  const char* name;
  MaskFormat format;
  std::string data;
  int width;
  int height;
  const char* message;
};

void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

class MalformedMaskTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedMaskTest, IsInvalidArgument) {
  const MalformedCase& c = GetParam();
  absl::StatusOr<cv::Mat> decoded =
      DecodeMask(c.data, c.format, c.width, c.height);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr(c.message));
}

std::string ValidPng(int width, int height) {
  return *EncodeMask(cv::Mat(height, width, CV_8UC1, cv::Scalar(1)),
                     MaskFormat::kPng);
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, MalformedMaskTest,
    ::testing::Values(
        MalformedCase{"RleTruncatedId", MaskFormat::kRle, Bytes({0x80}), 1, 1,
                      "truncated"},
        MalformedCase{"RleTruncatedRun", MaskFormat::kRle,
                      Bytes({0x01, 0x02, 0x03, 0x81}), 3, 1, "run length"},
        MalformedCase{"RleMissingRun", MaskFormat::kRle, Bytes({0x01}), 1, 1,
                      "truncated"},
        MalformedCase{"RleRunsOverflow", MaskFormat::kRle,
                      Bytes({0x01, 0x03, 0x02, 0x02}), 2, 2, "overflow"},
        MalformedCase{"RleHugeRun", MaskFormat::kRle,
                      Bytes({0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0xff, 0xff, 0x01}),
                      2, 2, "overflow"},
        MalformedCase{"RleVarintOver64Bits", MaskFormat::kRle,
                      Bytes({0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0xff, 0xff, 0x02}),
                      2, 2, "64 bits"},
        MalformedCase{"RleShort", MaskFormat::kRle, Bytes({0x01, 0x03}), 2, 2,
                      "covers 3 pixels"},
        MalformedCase{"RleEmpty", MaskFormat::kRle, "", 2, 2,
                      "covers 0 pixels"},
        MalformedCase{"RleZeroRun", MaskFormat::kRle,
                      Bytes({0x01, 0x00, 0x01, 0x04}), 2, 2, "zero run"},
        MalformedCase{"RleIdTooLarge", MaskFormat::kRle,
                      Bytes({0x80, 0x80, 0x04, 0x01}), 1, 1, "65535"},
        MalformedCase{"RawWrongSize", MaskFormat::kRaw, "abc", 2, 2,
                      "needs 4 (uint8 ids) or 8 (uint16 ids)"},
        MalformedCase{"ZeroWidth", MaskFormat::kRaw, "", 0, 2, "positive"},
        MalformedCase{"NegativeHeight", MaskFormat::kRle, Bytes({0, 1}), 1, -1,
                      "positive"},
        MalformedCase{"PngNotPng", MaskFormat::kPng, "not a png at all....", 2,
                      2, "signature"},
        MalformedCase{"PngWrongSize", MaskFormat::kPng, ValidPng(3, 2), 2, 3,
                      "3x2"},
        MalformedCase{"PngTruncated", MaskFormat::kPng,
                      ValidPng(64, 64).substr(0, 40), 64, 64, "cannot decode"}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) {
      return std::string(info.param.name);
    });

TEST(MaskCodecTest, PngColorImageIsRefused) {
  std::vector<uchar> buffer;
  ASSERT_TRUE(cv::imencode(".png", cv::Mat(2, 2, CV_8UC3), buffer));
  absl::StatusOr<cv::Mat> decoded = DecodeMask(
      std::string(buffer.begin(), buffer.end()), MaskFormat::kPng, 2, 2);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("grayscale"));
}

}  // namespace
}  // namespace segserve
