#ifndef SEGSERVE_COMMON_MASK_CODEC_H_
#define SEGSERVE_COMMON_MASK_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

// Wire encodings of a label map (see MaskEncoding in segmentation.proto).
enum class MaskFormat { kPng, kRaw, kRle };

// Encodes a label map: a CV_8UC1 (ids < 256) or CV_16UC1 matrix.
//   kPng: 8- or 16-bit grayscale PNG, fast compression settings.
//   kRaw: row-major ids, uint8 or uint16 little-endian.
//   kRle: (class_id, run_length) varint pairs over the row-major map.
// The width and height are not stored in RAW and RLE data: the receiver gets
// them from Mask.width/height. Any row stride is accepted. Fails with
// INVALID_ARGUMENT for an empty matrix or another type. Thread-safe.
absl::StatusOr<std::string> EncodeMask(const cv::Mat& labels,
                                       MaskFormat format);

// Decodes a mask of the given size back to CV_8UC1, or CV_16UC1 when the data
// holds 16-bit ids (16-bit PNG, 2 bytes per pixel RAW, or an RLE id above
// 255). Fails with INVALID_ARGUMENT, saying what was wrong, when a side is not
// positive or the data does not cover exactly width x height pixels: a PNG of
// another size or not grayscale, a RAW size that is neither w*h nor 2*w*h, an
// RLE varint that is truncated or over 64 bits, an id above 65535, a zero run,
// or runs that overflow or fall short of w*h. Thread-safe.
absl::StatusOr<cv::Mat> DecodeMask(absl::string_view data, MaskFormat format,
                                   int width, int height);

}  // namespace segserve

#endif  // SEGSERVE_COMMON_MASK_CODEC_H_
