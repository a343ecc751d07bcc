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

// An image decoded for a model whose input is smaller: the pixels, and the
// size of the image they show (after EXIF orientation), larger than the
// pixels when a JPEG was decoded at a reduced scale.
struct DecodedImage {
  cv::Mat rgb;        // CV_8UC3.
  ImageSize size;     // The whole image's.
  int reduction = 1;  // 1, 2, 4 or 8: size over the pixels' size, rounded up.
};

// DecodeImage, except that a JPEG is decoded at 1/8, 1/4 or 1/2 of its size
// in the DCT domain (libjpeg's scaled inverse DCT: a fraction of the work of
// decoding it whole and shrinking it after) when the reduced image still
// has at least at_least.width x at_least.height pixels: the largest such
// reduction. Every other format, and a JPEG too small to reduce, decodes
// whole. The pixel limit applies to the whole image.
absl::StatusOr<DecodedImage> DecodeImageAtLeast(absl::string_view encoded,
                                                int64_t max_pixels,
                                                ImageSize at_least);

// Converts packed row-major raw pixels into an 8-bit RGB image (CV_8UC3) that
// owns a copy of the pixels. Fails with INVALID_ARGUMENT when a side is not
// positive, the format is unknown, the pixel count exceeds max_pixels (0: no
// limit), or data.size() != width * height * channels. Thread-safe.
absl::StatusOr<cv::Mat> RawToRgb(int width, int height, PixelFormat format,
                                 absl::string_view data, int64_t max_pixels);

}  // namespace segserve

#endif  // SEGSERVE_COMMON_IMAGE_CODEC_H_
