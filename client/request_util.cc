#include "client/request_util.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "opencv2/core.hpp"

namespace segserve {

v1::SegmentRequest MakeEncodedRequest(std::string encoded_image) {
  v1::SegmentRequest request;
  request.mutable_image()->set_encoded(std::move(encoded_image));
  return request;
}

absl::StatusOr<v1::SegmentRequest> MakeRawRequest(const cv::Mat& image,
                                                  v1::PixelFormat format) {
  if (image.empty()) {
    return absl::InvalidArgumentError("cannot send an empty image");
  }
  int channels = 0;
  switch (format) {
    case v1::RGB8:
    case v1::BGR8:
      channels = 3;
      break;
    case v1::GRAY8:
      channels = 1;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("raw pixel format ", static_cast<int>(format),
                       " is not allowed; use RGB8, BGR8 or GRAY8"));
  }
  if (image.type() != CV_8UC(channels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("image type ", cv::typeToString(image.type()),
                     " does not match ", v1::PixelFormat_Name(format),
                     ", which needs ", cv::typeToString(CV_8UC(channels))));
  }
  v1::SegmentRequest request;
  v1::RawImage* raw = request.mutable_image()->mutable_raw();
  raw->set_width(static_cast<uint32_t>(image.cols));
  raw->set_height(static_cast<uint32_t>(image.rows));
  raw->set_format(format);
  const size_t row_bytes = static_cast<size_t>(image.cols) * channels;
  std::string* data = raw->mutable_data();
  data->resize(row_bytes * image.rows);
  for (int y = 0; y < image.rows; ++y) {
    std::memcpy(data->data() + row_bytes * y, image.ptr(y), row_bytes);
  }
  return request;
}

namespace {

absl::Status CheckMaskSize(const v1::Mask& mask) {
  constexpr uint32_t kMax = std::numeric_limits<int>::max();
  if (mask.width() == 0 || mask.height() == 0 || mask.width() > kMax ||
      mask.height() > kMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask size ", mask.width(), "x", mask.height(),
                     " is invalid; each side must be 1..", kMax));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<cv::Mat> DecodeMaskToMat(const v1::Mask& mask) {
  SEGSERVE_RETURN_IF_ERROR(CheckMaskSize(mask));
  SEGSERVE_ASSIGN_OR_RETURN(MaskFormat format, ToMaskFormat(mask.encoding()));
  return DecodeMask(mask.data(), format, static_cast<int>(mask.width()),
                    static_cast<int>(mask.height()));
}

absl::StatusOr<cv::Mat> DecodeConfidenceToMat(const v1::Mask& mask) {
  SEGSERVE_RETURN_IF_ERROR(CheckMaskSize(mask));
  if (mask.confidence().empty()) {
    return absl::NotFoundError(
        "the response has no confidence; set include_confidence in the "
        "request");
  }
  const uint64_t pixels = uint64_t{mask.width()} * mask.height();
  if (mask.confidence().size() != pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("confidence has ", mask.confidence().size(), " bytes; a ",
                     mask.width(), "x", mask.height(), " mask needs ", pixels));
  }
  cv::Mat confidence(static_cast<int>(mask.height()),
                     static_cast<int>(mask.width()), CV_8UC1);
  std::memcpy(confidence.data, mask.confidence().data(), pixels);
  return confidence;
}

}  // namespace segserve
