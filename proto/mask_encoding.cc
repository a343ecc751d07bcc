#include "proto/mask_encoding.h"

#include "absl/strings/str_cat.h"

namespace segserve {

absl::StatusOr<MaskFormat> ToMaskFormat(v1::MaskEncoding encoding) {
  switch (encoding) {
    case v1::PNG:
      return MaskFormat::kPng;
    case v1::RAW:
      return MaskFormat::kRaw;
    case v1::RLE:
      return MaskFormat::kRle;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("mask_encoding ", static_cast<int>(encoding),
                   " is unknown; allowed: PNG, RAW, RLE"));
}

v1::MaskEncoding ToMaskEncoding(MaskFormat format) {
  switch (format) {
    case MaskFormat::kRaw:
      return v1::RAW;
    case MaskFormat::kRle:
      return v1::RLE;
    case MaskFormat::kPng:
      break;
  }
  return v1::PNG;
}

}  // namespace segserve
