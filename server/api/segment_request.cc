#include "server/api/segment_request.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "proto/mask_encoding.h"
#include "server/service/model_version.h"

namespace segserve {
absl::StatusOr<SegmentJob> ToSegmentJob(const v1::SegmentRequest& request) {
  SegmentJob job;
  job.model = request.model();
  SEGSERVE_ASSIGN_OR_RETURN(job.version,
                            ParseModelVersion(request.model_version()));
  ImageInput& input = job.images.emplace_back();
  const v1::Image& image = request.image();
  switch (image.source_case()) {
    case v1::Image::kEncoded:
      if (image.encoded().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("image.encoded is empty; send the bytes of a ",
                         kEncodedFormats, " file"));
      }
      input.encoded = image.encoded();
      break;
    case v1::Image::kRaw: {
      const v1::RawImage& raw = image.raw();
      if (raw.width() == 0 || raw.height() == 0 ||
          raw.width() > uint32_t(kMaxImageSide) ||
          raw.height() > uint32_t(kMaxImageSide)) {
        return absl::InvalidArgumentError(
            absl::StrCat("image.raw is ", raw.width(), "x", raw.height(),
                         "; each side must be 1..", uint32_t(kMaxImageSide)));
      }
      switch (raw.format()) {
        case v1::RGB8:
          input.raw_format = PixelFormat::kRgb8;
          break;
        case v1::BGR8:
          input.raw_format = PixelFormat::kBgr8;
          break;
        case v1::GRAY8:
          input.raw_format = PixelFormat::kGray8;
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("image.raw.format ", int(raw.format()),
                           " is not supported; allowed: RGB8, BGR8, GRAY8"));
      }
      input.raw = true;
      input.raw_width = int(raw.width());
      input.raw_height = int(raw.height());
      input.raw_data = raw.data();
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "the request has no image; set image.encoded (", kEncodedFormats,
          " bytes) or image.raw (RGB8, BGR8 or GRAY8 pixels)"));
  }
  SEGSERVE_ASSIGN_OR_RETURN(job.mask_format,
                            ToMaskFormat(request.mask_encoding()));
  job.with_confidence = request.include_confidence();
  job.priority = request.priority();
  return job;
}

}  // namespace segserve
