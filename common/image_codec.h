#ifndef SEGSERVE_COMMON_IMAGE_CODEC_H_
#define SEGSERVE_COMMON_IMAGE_CODEC_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

enum class PixelFormat { kRgb8, kBgr8, kGray8 };

struct ImageSize {
  int width = 0;
  int height = 0;
};

// Reads the width and height from the header of a JPEG (SOFn marker), PNG
// (IHDR), BMP (DIB header), WebP (VP8/VP8L/VP8X) or TIFF (first IFD) file
// without decoding the pixels, so oversized images are refused before any
// large allocation. Returns NOT_FOUND for any other format and
// INVALID_ARGUMENT when the header of one of these is malformed or truncated.
// Thread-safe; `encoded` is only read during the call.
absl::StatusOr<ImageSize> PeekImageSize(absl::string_view encoded);

// Decodes a JPEG, PNG, BMP, WebP or TIFF file into an 8-bit RGB image
// (CV_8UC3, continuous, owning its pixels). Grayscale and 16-bit images are
// converted (16-bit keeps the high byte), alpha is dropped, and JPEG EXIF
// orientation is applied. Other formats OpenCV could read are refused. Fails
// with INVALID_ARGUMENT, naming the accepted formats, when it cannot decode,
// and when the image has more than max_pixels pixels (0: no limit): checked
// from the header before decoding, and again after. OpenCV exceptions are
// caught and returned as a status. Thread-safe.
absl::StatusOr<cv::Mat> DecodeImage(absl::string_view encoded,
                                    int64_t max_pixels);

// Converts packed row-major raw pixels into an 8-bit RGB image (CV_8UC3) that
// owns a copy of the pixels. Fails with INVALID_ARGUMENT when a side is not
// positive, the format is unknown, the pixel count exceeds max_pixels (0: no
// limit), or data.size() != width * height * channels. Thread-safe.
absl::StatusOr<cv::Mat> RawToRgb(int width, int height, PixelFormat format,
                                 absl::string_view data, int64_t max_pixels);

}  // namespace segserve

#endif  // SEGSERVE_COMMON_IMAGE_CODEC_H_
