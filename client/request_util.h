#ifndef SEGSERVE_CLIENT_REQUEST_UTIL_H_
#define SEGSERVE_CLIENT_REQUEST_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/mask_codec.h"
#include "opencv2/core/mat.hpp"
#include "proto/mask_encoding.h"  // ToMaskFormat, ToMaskEncoding.
#include "segserve/v1/segmentation.pb.h"

namespace segserve {

// Builds requests and reads responses. All functions are thread-safe and keep
// no reference to their arguments.

// A request carrying an encoded image file (JPEG, PNG, BMP, WebP or TIFF
// bytes, sent as they are). Model, version and mask encoding are left at their
// defaults (server default model, latest version, PNG mask).
v1::SegmentRequest MakeEncodedRequest(std::string encoded_image);

// A request carrying raw pixels copied from `image`: CV_8UC3 in the given
// channel order (RGB8, the default, or BGR8, OpenCV's usual order) or CV_8UC1
// with GRAY8. Any row stride is accepted; the pixels are sent packed. Fails
// with INVALID_ARGUMENT for an empty image, another type, or a format that
// does not match the channel count.
absl::StatusOr<v1::SegmentRequest> MakeRawRequest(
    const cv::Mat& image, v1::PixelFormat format = v1::RGB8);

// Decodes a response's mask to a label map of mask.width x mask.height:
// CV_8UC1, or CV_16UC1 for 16-bit ids. Fails with INVALID_ARGUMENT when the
// data does not match the size and encoding.
absl::StatusOr<cv::Mat> DecodeMaskToMat(const v1::Mask& mask);

// The per-pixel confidence (0..255) of a response's mask as CV_8UC1; fails
// with NOT_FOUND when the response has none (include_confidence was false)
// and INVALID_ARGUMENT when it is not width * height bytes.
absl::StatusOr<cv::Mat> DecodeConfidenceToMat(const v1::Mask& mask);

}  // namespace segserve

#endif  // SEGSERVE_CLIENT_REQUEST_UTIL_H_
