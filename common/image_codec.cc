#include "common/image_codec.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

constexpr char kSupportedFormats[] = "JPEG, PNG, BMP, WebP or TIFF";

enum class Container { kUnknown, kJpeg, kPng, kBmp, kWebp, kTiff };

// Bounds-checked big- and little-endian reads over the encoded bytes.
class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}

  size_t size() const { return data_.size(); }
  bool Has(uint64_t offset, uint64_t n) const {
    return offset <= data_.size() && n <= data_.size() - offset;
  }
  uint8_t U8(size_t offset) const {
    return static_cast<uint8_t>(data_[offset]);
  }
  uint64_t Be(size_t offset, int bytes) const {
    uint64_t value = 0;
    for (int i = 0; i < bytes; ++i) value = (value << 8) | U8(offset + i);
    return value;
  }
  uint64_t Le(size_t offset, int bytes) const {
    uint64_t value = 0;
    for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | U8(offset + i);
    return value;
  }
  bool Matches(size_t offset, absl::string_view magic) const {
    return Has(offset, magic.size()) &&
           data_.substr(offset, magic.size()) == magic;
  }

 private:
  absl::string_view data_;
};

Container Detect(const Reader& r) {
  if (r.Matches(0, absl::string_view("\xff\xd8\xff", 3))) {
    return Container::kJpeg;
  }
  if (r.Matches(0, absl::string_view("\x89PNG\r\n\x1a\n", 8))) {
    return Container::kPng;
  }
  if (r.Matches(0, "BM")) return Container::kBmp;
  if (r.Matches(0, "RIFF") && r.Matches(8, "WEBP")) return Container::kWebp;
  if (r.Matches(0, absl::string_view("II*\0", 4)) ||
      r.Matches(0, absl::string_view("MM\0*", 4)) ||
      r.Matches(0, absl::string_view("II+\0", 4)) ||
      r.Matches(0, absl::string_view("MM\0+", 4))) {
    return Container::kTiff;
  }
  return Container::kUnknown;
}

absl::Status Malformed(const char* format, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed ", format, " header: ", why));
}

absl::StatusOr<ImageSize> Checked(const char* format, uint64_t width,
                                  uint64_t height) {
  constexpr uint64_t kMax = std::numeric_limits<int>::max();
  if (width == 0 || height == 0 || width > kMax || height > kMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(format, " header gives an invalid size ", width, "x",
                     height, "; each side must be 1..", kMax));
  }
  return ImageSize{static_cast<int>(width), static_cast<int>(height)};
}

absl::StatusOr<ImageSize> PeekPng(const Reader& r) {
  // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
  if (!r.Has(0, 24)) return Malformed("PNG", "file ends inside the header");
  if (!r.Matches(12, "IHDR")) {
    return Malformed("PNG", "the first chunk is not IHDR");
  }
  return Checked("PNG", r.Be(16, 4), r.Be(20, 4));
}

bool IsJpegSof(uint8_t marker) {
  // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
  return marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 &&
         marker != 0xcc;
}

absl::StatusOr<ImageSize> PeekJpeg(const Reader& r) {
  size_t pos = 2;  // After SOI.
  while (true) {
    // Like libjpeg, skip stray bytes before a marker and any 0xFF fill.
    while (r.Has(pos, 1) && r.U8(pos) != 0xff) ++pos;
    while (r.Has(pos, 1) && r.U8(pos) == 0xff) ++pos;
    if (!r.Has(pos, 1)) {
      return Malformed("JPEG", "file ends before the frame header (SOF)");
    }
    const uint8_t marker = r.U8(pos++);
    if (marker == 0x01 || marker == 0xd8 ||
        (marker >= 0xd0 && marker <= 0xd7)) {
      continue;  // Standalone markers carry no length.
    }
    if (marker == 0xd9 || marker == 0xda) {
      return Malformed("JPEG", "no frame header (SOF) before the image data");
    }
    if (!r.Has(pos, 2)) {
      return Malformed("JPEG", "file ends inside a marker segment");
    }
    const uint32_t length = r.Be(pos, 2);
    if (length < 2) return Malformed("JPEG", "marker segment length below 2");
    if (IsJpegSof(marker)) {
      // Length (2), precision (1), height (2), width (2).
      if (length < 7 || !r.Has(pos, 7)) {
        return Malformed("JPEG", "frame header (SOF) is truncated");
      }
      return Checked("JPEG", r.Be(pos + 5, 2), r.Be(pos + 3, 2));
    }
    pos += length;
  }
}

absl::StatusOr<ImageSize> PeekBmp(const Reader& r) {
  // File header (14), DIB header size (4), then the size fields.
  if (!r.Has(0, 18)) return Malformed("BMP", "file ends inside the header");
  const uint64_t dib_size = r.Le(14, 4);
  if (dib_size == 12) {  // OS/2 BITMAPCOREHEADER: unsigned 16-bit sides.
    if (!r.Has(18, 4)) return Malformed("BMP", "file ends inside the header");
    return Checked("BMP", r.Le(18, 2), r.Le(20, 2));
  }
  if (dib_size < 16 || !r.Has(18, 8)) {
    return Malformed("BMP", "unknown or truncated DIB header");
  }
  const auto width = static_cast<int32_t>(r.Le(18, 4));
  const auto height = static_cast<int32_t>(r.Le(22, 4));
  // A negative height means a top-down bitmap.
  const int64_t abs_height = height < 0 ? -int64_t{height} : height;
  return Checked("BMP", width < 0 ? 0 : width, abs_height);
}

absl::StatusOr<ImageSize> PeekWebp(const Reader& r) {
  if (!r.Has(0, 30)) return Malformed("WebP", "file ends inside the header");
  if (r.Matches(12, "VP8 ")) {
    // Frame tag (3) at 20, start code 9d 01 2a, 14-bit sides + 2 scale bits.
    if (!r.Matches(23, "\x9d\x01\x2a")) {
      return Malformed("WebP", "lossy frame has no start code");
    }
    return Checked("WebP", r.Le(26, 2) & 0x3fff, r.Le(28, 2) & 0x3fff);
  }
  if (r.Matches(12, "VP8L")) {
    if (r.U8(20) != 0x2f) {
      return Malformed("WebP", "lossless frame has no signature");
    }
    const uint64_t bits = r.Le(21, 4);
    return Checked("WebP", (bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1);
  }
  if (r.Matches(12, "VP8X")) {
    // Flags (4) at 20, then 24-bit canvas width - 1 and height - 1.
    return Checked("WebP", r.Le(24, 3) + 1, r.Le(27, 3) + 1);
  }
  return Malformed("WebP", "first chunk is not VP8, VP8L or VP8X");
}

absl::StatusOr<ImageSize> PeekTiff(const Reader& r) {
  const bool little = r.U8(0) == 'I';
  auto read = [&](uint64_t offset, int bytes) -> uint64_t {
    return little ? r.Le(offset, bytes) : r.Be(offset, bytes);
  };
  const bool big_tiff = read(2, 2) == 43;
  // Classic TIFF: 4-byte offsets, 2-byte entry count, 12-byte entries.
  // BigTIFF: 8-byte offsets, 8-byte entry count, 20-byte entries.
  const int offset_bytes = big_tiff ? 8 : 4;
  const int count_bytes = big_tiff ? 8 : 2;
  const int entry_bytes = big_tiff ? 20 : 12;
  const uint64_t ifd_field = big_tiff ? 8 : 4;
  if (!r.Has(0, ifd_field + offset_bytes)) {
    return Malformed("TIFF", "file ends inside the header");
  }
  const uint64_t ifd = read(ifd_field, offset_bytes);
  if (!r.Has(ifd, count_bytes)) {
    return Malformed("TIFF", "first IFD offset is past the end of the file");
  }
  const uint64_t entries = read(ifd, count_bytes);
  if (entries > r.size() / entry_bytes ||
      !r.Has(ifd + count_bytes, entries * entry_bytes)) {
    return Malformed("TIFF", "first IFD is truncated");
  }
  uint64_t width = 0;
  uint64_t height = 0;
  for (uint64_t i = 0; i < entries; ++i) {
    const uint64_t entry = ifd + count_bytes + i * entry_bytes;
    const uint64_t tag = read(entry, 2);
    if (tag != 256 && tag != 257) continue;  // ImageWidth, ImageLength.
    const uint64_t type = read(entry + 2, 2);
    const uint64_t value_at = entry + 4 + (big_tiff ? 8 : 4);
    uint64_t value = 0;
    if (type == 3) {  // SHORT
      value = read(value_at, 2);
    } else if (type == 4) {  // LONG
      value = read(value_at, 4);
    } else if (type == 16 && big_tiff) {  // LONG8
      value = read(value_at, 8);
    } else {
      return Malformed("TIFF", "image width or length has an unexpected type");
    }
    (tag == 256 ? width : height) = value;
  }
  if (width == 0 || height == 0) {
    return Malformed("TIFF", "first IFD has no image width or length");
  }
  return Checked("TIFF", width, height);
}

absl::Status CheckPixels(int64_t width, int64_t height, int64_t max_pixels) {
  if (max_pixels > 0 && width * height > max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image is ", width, "x", height, " = ", width * height,
                     " pixels; at most ", max_pixels, " pixels are allowed"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImageSize> PeekImageSize(absl::string_view encoded) {
  const Reader r(encoded);
  switch (Detect(r)) {
    case Container::kJpeg:
      return PeekJpeg(r);
    case Container::kPng:
      return PeekPng(r);
    case Container::kBmp:
      return PeekBmp(r);
    case Container::kWebp:
      return PeekWebp(r);
    case Container::kTiff:
      return PeekTiff(r);
    case Container::kUnknown:
      break;
  }
  return absl::NotFoundError(
      absl::StrCat("not a ", kSupportedFormats, " file"));
}

namespace {

// The checks every decode makes before OpenCV sees the bytes: not empty, a
// documented format, a size under the limit. Returns the header's size and
// container.
absl::StatusOr<std::pair<ImageSize, Container>> CheckEncoded(
    absl::string_view encoded, int64_t max_pixels) {
  if (encoded.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image is empty (0 bytes); send a ", kSupportedFormats, " file"));
  }
  if (encoded.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("encoded image is ", encoded.size(),
                     " bytes; at most 2^31 - 1 bytes are allowed"));
  }
  // Only the documented formats reach OpenCV: imdecode would also accept
  // JPEG 2000, EXR, PPM, GDAL formats and more, each a parser to expose.
  absl::StatusOr<ImageSize> size = PeekImageSize(encoded);
  if (absl::IsNotFound(size.status())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot decode the image (", encoded.size(),
        " bytes): not a recognized image file; supported formats are ",
        kSupportedFormats));
  }
  if (!size.ok()) return size.status();
  SEGSERVE_RETURN_IF_ERROR(CheckPixels(size->width, size->height, max_pixels));
  return std::make_pair(*size, Detect(Reader(encoded)));
}

// imdecode with `flags` (IMREAD_COLOR or one of its REDUCED forms), as RGB.
absl::StatusOr<cv::Mat> DecodeChecked(absl::string_view encoded,
                                      int64_t max_pixels, int flags) {
  cv::Mat bgr;
  try {
    const cv::Mat buffer(1, static_cast<int>(encoded.size()), CV_8UC1,
                         const_cast<char*>(encoded.data()));
    // IMREAD_COLOR yields 8-bit BGR for gray, alpha and 16-bit inputs alike.
    bgr = cv::imdecode(buffer, flags);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot decode the image (", encoded.size(), " bytes): ", e.what(),
        "; supported formats are ", kSupportedFormats));
  }
  if (bgr.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot decode the image (", encoded.size(),
        " bytes): the data is corrupt or truncated; supported formats are ",
        kSupportedFormats));
  }
  // EXIF orientation may swap the sides; the count stays, but check anyway.
  SEGSERVE_RETURN_IF_ERROR(CheckPixels(bgr.cols, bgr.rows, max_pixels));
  if (bgr.type() != CV_8UC3) {
    return absl::InternalError(absl::StrCat("OpenCV decoded the image as ",
                                            cv::typeToString(bgr.type()),
                                            " instead of CV_8UC3"));
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

int CeilDiv(int value, int divisor) { return (value + divisor - 1) / divisor; }

// The largest of 8, 4 and 2 that keeps both sides of a width x height image
// at least `at_least`'s; 1 when none does.
int ReductionFor(int width, int height, const ImageSize& at_least) {
  for (int denominator : {8, 4, 2}) {
    if (CeilDiv(width, denominator) >= at_least.width &&
        CeilDiv(height, denominator) >= at_least.height) {
      return denominator;
    }
  }
  return 1;
}

int ReducedFlag(int denominator) {
  switch (denominator) {
    case 8:
      return cv::IMREAD_REDUCED_COLOR_8;
    case 4:
      return cv::IMREAD_REDUCED_COLOR_4;
    case 2:
      return cv::IMREAD_REDUCED_COLOR_2;
  }
  return cv::IMREAD_COLOR;
}

}  // namespace

absl::StatusOr<cv::Mat> DecodeImage(absl::string_view encoded,
                                    int64_t max_pixels) {
  SEGSERVE_RETURN_IF_ERROR(CheckEncoded(encoded, max_pixels).status());
  return DecodeChecked(encoded, max_pixels, cv::IMREAD_COLOR);
}

absl::StatusOr<DecodedImage> DecodeImageAtLeast(absl::string_view encoded,
                                                int64_t max_pixels,
                                                ImageSize at_least) {
  SEGSERVE_ASSIGN_OR_RETURN(auto checked, CheckEncoded(encoded, max_pixels));
  const auto [header, container] = checked;
  const int denominator =
      container == Container::kJpeg
          ? ReductionFor(header.width, header.height, at_least)
          : 1;
  if (denominator > 1) {
    SEGSERVE_ASSIGN_OR_RETURN(
        cv::Mat reduced,
        DecodeChecked(encoded, max_pixels, ReducedFlag(denominator)));
    const int wide = CeilDiv(header.width, denominator);
    const int high = CeilDiv(header.height, denominator);
    // EXIF orientation may have turned the image: its sides are then the
    // header's swapped, and the reduction must still suit them.
    ImageSize size{0, 0};
    if (reduced.cols == wide && reduced.rows == high) {
      size = header;
    } else if (reduced.cols == high && reduced.rows == wide) {
      size = {header.height, header.width};
    }
    if (size.width > 0 && reduced.cols >= at_least.width &&
        reduced.rows >= at_least.height) {
      return DecodedImage{std::move(reduced), size, denominator};
    }
  }
  SEGSERVE_ASSIGN_OR_RETURN(
      cv::Mat rgb, DecodeChecked(encoded, max_pixels, cv::IMREAD_COLOR));
  const ImageSize size{rgb.cols, rgb.rows};
  return DecodedImage{std::move(rgb), size, 1};
}

absl::StatusOr<cv::Mat> RawToRgb(int width, int height, PixelFormat format,
                                 absl::string_view data, int64_t max_pixels) {
  int channels = 0;
  int code = -1;
  switch (format) {
    case PixelFormat::kRgb8:
      channels = 3;
      break;
    case PixelFormat::kBgr8:
      channels = 3;
      code = cv::COLOR_BGR2RGB;
      break;
    case PixelFormat::kGray8:
      channels = 1;
      code = cv::COLOR_GRAY2RGB;
      break;
  }
  if (channels == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown raw pixel format ", static_cast<int>(format),
                     "; allowed: RGB8, BGR8, GRAY8"));
  }
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw image size ", width, "x", height,
                     " is invalid: width and height must be positive"));
  }
  SEGSERVE_RETURN_IF_ERROR(CheckPixels(width, height, max_pixels));
  const uint64_t expected = static_cast<uint64_t>(width) * height * channels;
  if (data.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw image data has ", data.size(), " bytes; a ", width, "x", height,
        " image with ", channels, " channel(s) of 8 bits needs ", expected,
        " bytes (row-major, packed)"));
  }
  try {
    const cv::Mat view(height, width, CV_8UC(channels),
                       const_cast<char*>(data.data()));
    cv::Mat rgb;
    if (code < 0) {
      rgb = view.clone();  // The caller's bytes are only borrowed.
    } else {
      cv::cvtColor(view, rgb, code);
    }
    return rgb;
  } catch (const cv::Exception& e) {
    return absl::InternalError(
        absl::StrCat("OpenCV failed to convert the raw image: ", e.what()));
  }
}

}  // namespace segserve
