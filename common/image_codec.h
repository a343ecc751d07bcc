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

// Reads the width and height from a PNG or JPEG header without decoding the
// pixels, so oversized images are refused before any large allocation.
// Returns NOT_FOUND for other formats (the caller checks after decoding) and
// INVALID_ARGUMENT for a PNG/JPEG whose header is malformed.
absl::StatusOr<ImageSize> PeekImageSize(absl::string_view encoded);

// Decodes a JPEG, PNG, BMP, WebP or TIFF file into an 8-bit RGB image
// (CV_8UC3). Grayscale, 16-bit and alpha images are converted. Fails with
// INVALID_ARGUMENT, naming the accepted formats, when it cannot decode, and
// when the image has more than max_pixels pixels (0: no limit).
absl::StatusOr<cv::Mat> DecodeImage(absl::string_view encoded,
                                    int64_t max_pixels);

// Converts packed row-major raw pixels into an 8-bit RGB image (CV_8UC3).
// Fails with INVALID_ARGUMENT when a side is zero, the pixel count exceeds
// max_pixels (0: no limit), or data.size() != width * height * channels.
absl::StatusOr<cv::Mat> RawToRgb(int width, int height, PixelFormat format,
                                 absl::string_view data, int64_t max_pixels);

}  // namespace segserve

#endif  // SEGSERVE_COMMON_IMAGE_CODEC_H_
