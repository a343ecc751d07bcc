#include "common/image_codec.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

using ::testing::HasSubstr;

constexpr int kWidth = 64;
constexpr int kHeight = 48;

// A smooth BGR test picture: gradients compress well and survive lossy codecs.
cv::Mat MakeBgr() {
  cv::Mat bgr(kHeight, kWidth, CV_8UC3);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      bgr.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<uint8_t>(x * 4), static_cast<uint8_t>(y * 5),
                    static_cast<uint8_t>(128 + (x - y)));
    }
  }
  return bgr;
}

std::string Encode(const std::string& ext, const cv::Mat& image,
                   const std::vector<int>& params = {}) {
  std::vector<uchar> buffer;
  EXPECT_TRUE(cv::imencode(ext, image, buffer, params)) << ext;
  return std::string(buffer.begin(), buffer.end());
}

double MeanAbsDiff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  const cv::Scalar mean = cv::mean(diff);
  return (mean[0] + mean[1] + mean[2]) / 3;
}

struct FormatCase {
  const char* ext;
  std::vector<int> params;
  double max_mean_error;  // 0: lossless.
};

std::string CaseName(const FormatCase& c) {
  std::string name(c.ext + 1);
  if (c.max_mean_error == 0) name += "_lossless";
  return name;
}

// Test names and failure messages show the case by name, not as bytes.
void PrintTo(const FormatCase& c, std::ostream* os) { *os << CaseName(c); }

class DecodeFormatTest : public ::testing::TestWithParam<FormatCase> {};

TEST_P(DecodeFormatTest, DecodesToRgb) {
  const FormatCase& c = GetParam();
  const cv::Mat bgr = MakeBgr();
  const std::string encoded = Encode(c.ext, bgr, c.params);

  absl::StatusOr<ImageSize> size = PeekImageSize(encoded);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(size->width, kWidth);
  EXPECT_EQ(size->height, kHeight);

  absl::StatusOr<cv::Mat> rgb = DecodeImage(encoded, kWidth * kHeight);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  ASSERT_EQ(rgb->type(), CV_8UC3);
  ASSERT_EQ(rgb->size(), bgr.size());
  cv::Mat expected;
  cv::cvtColor(bgr, expected, cv::COLOR_BGR2RGB);
  if (c.max_mean_error == 0) {
    EXPECT_EQ(MeanAbsDiff(*rgb, expected), 0);
  } else {
    EXPECT_LT(MeanAbsDiff(*rgb, expected), c.max_mean_error);
    // A channel swap would be far off, even for a lossy codec.
    EXPECT_GT(MeanAbsDiff(*rgb, bgr), 20);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, DecodeFormatTest,
    ::testing::Values(FormatCase{".jpg", {cv::IMWRITE_JPEG_QUALITY, 95}, 3},
                      FormatCase{".png", {}, 0}, FormatCase{".bmp", {}, 0},
                      FormatCase{".webp", {cv::IMWRITE_WEBP_QUALITY, 90}, 4},
                      FormatCase{".webp", {cv::IMWRITE_WEBP_QUALITY, 101}, 0},
                      FormatCase{".tiff", {}, 0}),
    [](const ::testing::TestParamInfo<FormatCase>& info) {
      return CaseName(info.param);
    });

TEST(DecodeImageTest, GrayPngBecomesRgb) {
  cv::Mat gray(10, 12, CV_8UC1);
  cv::randu(gray, 0, 256);
  absl::StatusOr<cv::Mat> rgb = DecodeImage(Encode(".png", gray), 0);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  ASSERT_EQ(rgb->type(), CV_8UC3);
  std::vector<cv::Mat> channels;
  cv::split(*rgb, channels);
  for (const cv::Mat& channel : channels) {
    EXPECT_EQ(cv::countNonZero(channel != gray), 0);
  }
}

TEST(DecodeImageTest, AlphaIsDropped) {
  cv::Mat bgra(8, 8, CV_8UC4, cv::Scalar(10, 20, 30, 0));
  absl::StatusOr<cv::Mat> rgb = DecodeImage(Encode(".png", bgra), 0);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  ASSERT_EQ(rgb->type(), CV_8UC3);
  EXPECT_EQ(rgb->at<cv::Vec3b>(3, 4), cv::Vec3b(30, 20, 10));
}

TEST(DecodeImageTest, SixteenBitPngKeepsHighByte) {
  cv::Mat bgr16(6, 5, CV_16UC3, cv::Scalar(100 * 257, 200 * 257, 50 * 257));
  absl::StatusOr<cv::Mat> rgb = DecodeImage(Encode(".png", bgr16), 0);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  ASSERT_EQ(rgb->type(), CV_8UC3);
  EXPECT_EQ(rgb->at<cv::Vec3b>(2, 2), cv::Vec3b(50, 200, 100));
}

TEST(DecodeImageTest, SixteenBitGrayPng) {
  cv::Mat gray16(6, 5, CV_16UC1, cv::Scalar(0xab00));
  absl::StatusOr<cv::Mat> rgb = DecodeImage(Encode(".png", gray16), 0);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->at<cv::Vec3b>(0, 0), cv::Vec3b(0xab, 0xab, 0xab));
}

TEST(DecodeImageTest, PixelLimitAfterDecode) {
  const std::string png = Encode(".png", MakeBgr());
  EXPECT_TRUE(DecodeImage(png, kWidth * kHeight).ok());
  absl::StatusOr<cv::Mat> rgb = DecodeImage(png, kWidth * kHeight - 1);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(), HasSubstr("at most 3071 pixels"));
}

// Headers that claim a huge image followed by no pixel data: refused for size,
// which proves the limit is checked before decoding (decoding would fail with
// a different error).
TEST(DecodeImageTest, PixelLimitCheckedFromPngHeader) {
  std::string png = Encode(".png", MakeBgr());
  // Width 100000 (0x000186a0) and height 100000 in IHDR; the CRC is now wrong.
  const std::string side("\x00\x01\x86\xa0", 4);
  png.replace(16, 4, side);
  png.replace(20, 4, side);
  absl::StatusOr<ImageSize> size = PeekImageSize(png);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(size->width, 100000);
  absl::StatusOr<cv::Mat> rgb = DecodeImage(png, 1000000);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(),
              HasSubstr("100000x100000 = 10000000000 pixels"));
}

TEST(DecodeImageTest, PixelLimitCheckedFromJpegHeader) {
  // SOI, APP0 with 4 bytes of payload, SOF0 for 8 bits, 30000x40000, 3 comps.
  constexpr char kJpeg[] =
      "\xff\xd8"
      "\xff\xe0\x00\x06JFIF"
      "\xff\xff\xc0\x00\x11\x08\x75\x30\x9c\x40\x03"
      "\x01\x22\x00\x02\x11\x01\x03\x11\x01";
  const std::string jpeg(kJpeg, sizeof(kJpeg) - 1);
  absl::StatusOr<ImageSize> size = PeekImageSize(jpeg);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(size->width, 40000);
  EXPECT_EQ(size->height, 30000);
  absl::StatusOr<cv::Mat> rgb = DecodeImage(jpeg, 1 << 20);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(), HasSubstr("pixels are allowed"));
}

// A smooth 1000 x 600 JPEG, large enough to decode reduced.
cv::Mat LargeBgr() {
  cv::Mat large;
  cv::resize(MakeBgr(), large, cv::Size(1000, 600), 0, 0, cv::INTER_LINEAR);
  return large;
}

// `jpeg` with an EXIF APP1 segment after SOI whose orientation is 6 (turn
// 90 degrees clockwise to view): the viewed image is the stored one's
// height wide.
std::string WithExifOrientation6(const std::string& jpeg) {
  // "Exif\0\0", a little-endian TIFF header, one IFD entry: tag 0x0112
  // (Orientation), type SHORT, count 1, value 6; no next IFD.
  const std::string tiff(
      "Exif\0\0"
      "II*\0\x08\0\0\0"
      "\x01\0"
      "\x12\x01\x03\0\x01\0\0\0\x06\0\0\0"
      "\0\0\0\0",
      6 + 8 + 2 + 12 + 4);
  const size_t length = tiff.size() + 2;
  std::string app1 = "\xff\xe1";
  app1 += char(length >> 8);
  app1 += char(length & 0xff);
  return jpeg.substr(0, 2) + app1 + tiff + jpeg.substr(2);
}

TEST(DecodeImageAtLeastTest, JpegIsReducedAsFarAsTheInputAllows) {
  const cv::Mat bgr = LargeBgr();
  const std::string jpeg = Encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 95});
  struct Case {
    ImageSize at_least;
    int reduction;
  };
  for (const Case& c :
       {Case{{256, 128}, 2}, Case{{250, 150}, 4}, Case{{120, 75}, 8},
        Case{{1000, 600}, 1}, Case{{1001, 10}, 1}}) {
    absl::StatusOr<DecodedImage> decoded =
        DecodeImageAtLeast(jpeg, 0, c.at_least);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->reduction, c.reduction) << c.at_least.width;
    EXPECT_EQ(decoded->size.width, 1000);
    EXPECT_EQ(decoded->size.height, 600);
    ASSERT_EQ(decoded->rgb.type(), CV_8UC3);
    EXPECT_EQ(decoded->rgb.cols, 1000 / c.reduction);
    EXPECT_EQ(decoded->rgb.rows, 600 / c.reduction);
    // The scaled inverse DCT is close to decoding whole and averaging.
    cv::Mat expected;
    cv::resize(bgr, expected, decoded->rgb.size(), 0, 0, cv::INTER_AREA);
    cv::cvtColor(expected, expected, cv::COLOR_BGR2RGB);
    EXPECT_LT(MeanAbsDiff(decoded->rgb, expected), 2.0) << c.reduction;
  }
}

TEST(DecodeImageAtLeastTest, ReducedSidesRoundUp) {
  cv::Mat bgr;
  cv::resize(MakeBgr(), bgr, cv::Size(1001, 601));
  absl::StatusOr<DecodedImage> decoded =
      DecodeImageAtLeast(Encode(".jpg", bgr), 0, {100, 60});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->reduction, 8);
  EXPECT_EQ(decoded->rgb.cols, 126);
  EXPECT_EQ(decoded->rgb.rows, 76);
  EXPECT_EQ(decoded->size.width, 1001);
  EXPECT_EQ(decoded->size.height, 601);
}

TEST(DecodeImageAtLeastTest, OtherFormatsDecodeWhole) {
  absl::StatusOr<DecodedImage> decoded =
      DecodeImageAtLeast(Encode(".png", LargeBgr()), 0, {100, 60});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->reduction, 1);
  EXPECT_EQ(decoded->rgb.cols, 1000);
  EXPECT_EQ(decoded->size.width, 1000);
}

TEST(DecodeImageAtLeastTest, ThePixelLimitIsTheWholeImages) {
  absl::StatusOr<DecodedImage> decoded =
      DecodeImageAtLeast(Encode(".jpg", LargeBgr()), 500000, {100, 60});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(),
              HasSubstr("1000x600 = 600000 pixels"));
}

TEST(DecodeImageAtLeastTest, ExifOrientationTurnsTheSize) {
  const std::string jpeg = WithExifOrientation6(Encode(".jpg", LargeBgr()));
  absl::StatusOr<cv::Mat> whole = DecodeImage(jpeg, 0);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ(whole->cols, 600) << "OpenCV applies EXIF orientation";
  // Reduced by 2, turned: 300 x 500, still at least 256 x 128.
  absl::StatusOr<DecodedImage> decoded =
      DecodeImageAtLeast(jpeg, 0, {256, 128});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->reduction, 2);
  EXPECT_EQ(decoded->rgb.cols, 300);
  EXPECT_EQ(decoded->rgb.rows, 500);
  EXPECT_EQ(decoded->size.width, 600);
  EXPECT_EQ(decoded->size.height, 1000);
  // The header's 1000 x 600 allowed 2 for 400 x 200; turned, 300 x 500 is
  // too narrow, so the image decodes whole.
  decoded = DecodeImageAtLeast(jpeg, 0, {400, 200});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->reduction, 1);
  EXPECT_EQ(decoded->rgb.cols, 600);
  EXPECT_EQ(decoded->size.height, 1000);
}

TEST(PeekImageSizeTest, HandMadeTiffHeaders) {
  // Big-endian classic TIFF: IFD at 8 with ImageWidth SHORT 300 and
  // ImageLength LONG 70000.
  const std::string tiff(
      "MM\x00\x2a\x00\x00\x00\x08"
      "\x00\x02"
      "\x01\x00\x00\x03\x00\x00\x00\x01\x01\x2c\x00\x00"
      "\x01\x01\x00\x04\x00\x00\x00\x01\x00\x01\x11\x70",
      34);
  absl::StatusOr<ImageSize> size = PeekImageSize(tiff);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(size->width, 300);
  EXPECT_EQ(size->height, 70000);

  // Little-endian BigTIFF: IFD at 16 with ImageWidth LONG8 640 and
  // ImageLength SHORT 480.
  std::string big("II\x2b\x00\x08\x00\x00\x00", 8);
  big += std::string("\x10\x00\x00\x00\x00\x00\x00\x00", 8);  // IFD offset.
  big += std::string("\x02\x00\x00\x00\x00\x00\x00\x00", 8);  // 2 entries.
  big += std::string("\x00\x01\x10\x00", 4) + std::string(8, '\0');
  big[big.size() - 8] = 1;  // Count 1.
  big += std::string("\x80\x02\x00\x00\x00\x00\x00\x00", 8);
  big += std::string("\x01\x01\x03\x00", 4) + std::string("\x01", 1) +
         std::string(7, '\0');
  big += std::string("\xe0\x01\x00\x00\x00\x00\x00\x00", 8);
  size = PeekImageSize(big);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(size->width, 640);
  EXPECT_EQ(size->height, 480);
}

TEST(PeekImageSizeTest, OtherFormatsAreNotFound) {
  EXPECT_TRUE(
      absl::IsNotFound(PeekImageSize(Encode(".ppm", MakeBgr())).status()));
  EXPECT_TRUE(absl::IsNotFound(PeekImageSize("GIF89a....").status()));
  EXPECT_TRUE(absl::IsNotFound(PeekImageSize("").status()));
}

TEST(PeekImageSizeTest, MalformedHeadersAreInvalid) {
  const std::string png = Encode(".png", MakeBgr());
  const std::string jpeg = Encode(".jpg", MakeBgr());
  for (const std::string& bad :
       {png.substr(0, 20), jpeg.substr(0, 30), jpeg.substr(0, 3),
        std::string("\xff\xd8\xff\xda\x00\x02", 6),
        std::string("BM\x00\x00", 4), std::string("RIFF\0\0\0\0WEBP", 12),
        std::string("II*\0\xff\0\0\0", 8)}) {
    EXPECT_EQ(PeekImageSize(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << ::testing::PrintToString(bad);
  }
}

TEST(DecodeImageTest, GarbageIsRefusedNamingFormats) {
  absl::StatusOr<cv::Mat> rgb = DecodeImage("this is not an image", 0);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(), HasSubstr("JPEG, PNG, BMP, WebP"));
}

TEST(DecodeImageTest, FormatsOutsideTheContractAreRefused) {
  absl::StatusOr<cv::Mat> rgb = DecodeImage(Encode(".ppm", MakeBgr()), 0);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(), HasSubstr("supported formats"));
}

TEST(DecodeImageTest, EmptyIsRefused) {
  absl::StatusOr<cv::Mat> rgb = DecodeImage("", 0);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(), HasSubstr("empty"));
}

TEST(DecodeImageTest, TruncatedFilesAreRefused) {
  cv::Mat noise(kHeight, kWidth, CV_8UC3);
  cv::randu(noise, 0, 256);
  const std::string png = Encode(".png", noise);
  const std::string jpeg = Encode(".jpg", noise);
  for (const std::string& truncated :
       {png.substr(0, png.size() / 2), png.substr(0, 30),
        jpeg.substr(0, 100)}) {
    absl::StatusOr<cv::Mat> rgb = DecodeImage(truncated, 0);
    EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument)
        << truncated.size() << " bytes";
  }
}

TEST(RawToRgbTest, RgbIsCopied) {
  const std::string data = {1, 2, 3, 4, 5, 6};
  absl::StatusOr<cv::Mat> rgb = RawToRgb(2, 1, PixelFormat::kRgb8, data, 0);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  ASSERT_EQ(rgb->type(), CV_8UC3);
  EXPECT_EQ(rgb->at<cv::Vec3b>(0, 1), cv::Vec3b(4, 5, 6));
  EXPECT_NE(reinterpret_cast<const char*>(rgb->data), data.data());
}

TEST(RawToRgbTest, BgrIsSwapped) {
  const std::string data = {1, 2, 3, 4, 5, 6};
  absl::StatusOr<cv::Mat> rgb = RawToRgb(1, 2, PixelFormat::kBgr8, data, 0);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->at<cv::Vec3b>(0, 0), cv::Vec3b(3, 2, 1));
  EXPECT_EQ(rgb->at<cv::Vec3b>(1, 0), cv::Vec3b(6, 5, 4));
}

TEST(RawToRgbTest, GrayIsReplicated) {
  const std::string data = {7, 8, 9, 10, 11, 12};
  absl::StatusOr<cv::Mat> rgb = RawToRgb(3, 2, PixelFormat::kGray8, data, 0);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  ASSERT_EQ(rgb->size(), cv::Size(3, 2));
  EXPECT_EQ(rgb->at<cv::Vec3b>(1, 2), cv::Vec3b(12, 12, 12));
}

TEST(RawToRgbTest, SizeMismatchIsRefused) {
  absl::StatusOr<cv::Mat> rgb =
      RawToRgb(2, 2, PixelFormat::kRgb8, std::string(11, 'x'), 0);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(), HasSubstr("needs 12 bytes"));
  EXPECT_FALSE(
      RawToRgb(2, 2, PixelFormat::kGray8, std::string(12, 'x'), 0).ok());
}

TEST(RawToRgbTest, ZeroOrNegativeSizeIsRefused) {
  for (auto [w, h] : {std::pair{0, 2}, std::pair{2, 0}, std::pair{-1, -3}}) {
    absl::StatusOr<cv::Mat> rgb = RawToRgb(w, h, PixelFormat::kRgb8, "", 0);
    EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(rgb.status().message(), HasSubstr("positive"));
  }
}

TEST(RawToRgbTest, PixelLimit) {
  const std::string data(4 * 4 * 3, '\0');
  EXPECT_TRUE(RawToRgb(4, 4, PixelFormat::kRgb8, data, 16).ok());
  absl::StatusOr<cv::Mat> rgb = RawToRgb(4, 4, PixelFormat::kRgb8, data, 15);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(), HasSubstr("at most 15 pixels"));
}

TEST(RawToRgbTest, UnknownFormatIsRefused) {
  absl::StatusOr<cv::Mat> rgb =
      RawToRgb(1, 1, static_cast<PixelFormat>(42), "abc", 0);
  EXPECT_EQ(rgb.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rgb.status().message(), HasSubstr("RGB8, BGR8, GRAY8"));
}

}  // namespace
}  // namespace segserve
