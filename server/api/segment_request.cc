#include "server/api/segment_request.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/mask_encoding.h"

namespace segserve {
namespace {

constexpr uint32_t kMaxRawSide = 1 << 16;

}  // namespace

absl::StatusOr<SegmentJob> ToSegmentJob(const v1::SegmentRequest& request,
                                        absl::Time deadline,
                                        CancelFlag cancelled) {
  SegmentJob job;
  job.model = request.model();
  job.version = request.model_version();
  const v1::Image& image = request.image();
  switch (image.source_case()) {
    case v1::Image::kEncoded:
      if (image.encoded().empty()) {
        return absl::InvalidArgumentError(
            "image.encoded is empty; send the bytes of a JPEG, PNG, BMP, "
            "WebP or TIFF file");
      }
      job.encoded = image.encoded();
      break;
    case v1::Image::kRaw: {
      const v1::RawImage& raw = image.raw();
      if (raw.width() == 0 || raw.height() == 0 || raw.width() > kMaxRawSide ||
          raw.height() > kMaxRawSide) {
        return absl::InvalidArgumentError(
            absl::StrCat("image.raw is ", raw.width(), "x", raw.height(),
                         "; each side must be 1..", kMaxRawSide));
      }
      switch (raw.format()) {
        case v1::RGB8:
          job.raw_format = PixelFormat::kRgb8;
          break;
        case v1::BGR8:
          job.raw_format = PixelFormat::kBgr8;
          break;
        case v1::GRAY8:
          job.raw_format = PixelFormat::kGray8;
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("image.raw.format ", int(raw.format()),
                           " is not supported; allowed: RGB8, BGR8, GRAY8"));
      }
      job.raw = true;
      job.raw_width = int(raw.width());
      job.raw_height = int(raw.height());
      job.raw_data = raw.data();
      break;
    }
    default:
      return absl::InvalidArgumentError(
          "the request has no image; set image.encoded (JPEG, PNG, BMP, WebP "
          "or TIFF bytes) or image.raw (RGB8, BGR8 or GRAY8 pixels)");
  }
  absl::StatusOr<MaskFormat> mask_format =
      ToMaskFormat(request.mask_encoding());
  if (!mask_format.ok()) return mask_format.status();
  job.mask_format = *mask_format;
  job.with_confidence = request.include_confidence();
  job.priority = request.priority();
  job.deadline = deadline;
  job.cancelled = std::move(cancelled);
  return job;
}

}  // namespace segserve
