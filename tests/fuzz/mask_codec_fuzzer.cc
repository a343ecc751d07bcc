// The mask codecs. The first bytes choose a format and a size; the rest is
//   - decoded as mask data of that size: it decodes or fails cleanly, and
//     what decodes encodes back to data that decodes to the same labels;
//   - used as the labels of a map of that size (8- or 16-bit), which must
//     survive encode then decode unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/string_view.h"
#include "common/mask_codec.h"
#include "opencv2/core.hpp"

namespace {

bool SameLabels(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size()) return false;
  cv::Mat a16, b16;
  a.convertTo(a16, CV_16U);
  b.convertTo(b16, CV_16U);
  return cv::countNonZero(a16 != b16) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const auto format = static_cast<segserve::MaskFormat>(data[0] % 3);
  const bool wide = (data[0] & 0x80) != 0;
  const int width = 1 + data[1] % 64;
  const int height = 1 + data[2] % 64;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 3,
                               size - 3);

  absl::StatusOr<cv::Mat> decoded =
      segserve::DecodeMask(rest, format, width, height);
  if (decoded.ok()) {
    if (decoded->cols != width || decoded->rows != height) std::abort();
    absl::StatusOr<std::string> again = segserve::EncodeMask(*decoded, format);
    if (!again.ok()) std::abort();
    absl::StatusOr<cv::Mat> back =
        segserve::DecodeMask(*again, format, width, height);
    if (!back.ok() || !SameLabels(*decoded, *back)) std::abort();
  }

  cv::Mat labels(height, width, wide ? CV_16UC1 : CV_8UC1, cv::Scalar(0));
  const size_t bytes = labels.total() * labels.elemSize();
  std::memcpy(labels.data, rest.data(), std::min(bytes, rest.size()));
  for (auto target : {segserve::MaskFormat::kPng, segserve::MaskFormat::kRaw,
                      segserve::MaskFormat::kRle}) {
    absl::StatusOr<std::string> encoded = segserve::EncodeMask(labels, target);
    if (!encoded.ok()) std::abort();
    absl::StatusOr<cv::Mat> back =
        segserve::DecodeMask(*encoded, target, width, height);
    if (!back.ok() || !SameLabels(labels, *back)) std::abort();
  }
  return 0;
}
