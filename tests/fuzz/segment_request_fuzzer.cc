// The request path from a serialized SegmentRequest: parsing, the frontend's
// checks (ToSegmentJob), the image header checks and decoding, with the
// server's pixel limit. Any input must end in a job or a status, never a
// crash, and an accepted image must be within the limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/time/time.h"
#include "common/image_codec.h"
#include "segserve/v1/segmentation.pb.h"
#include "server/api/segment_request.h"

namespace {

// Small enough that a hostile header cannot make the fuzzer allocate much.
constexpr int64_t kMaxPixels = 1 << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  segserve::v1::SegmentRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<segserve::SegmentJob> job = segserve::ToSegmentJob(request);
  if (!job.ok()) return 0;
  if (job->images.size() != 1) std::abort();  // One image per Segment.
  const segserve::ImageInput& image = job->images.front();
  absl::StatusOr<cv::Mat> rgb =
      image.raw
          ? segserve::RawToRgb(image.raw_width, image.raw_height,
                               image.raw_format, image.raw_data, kMaxPixels)
          : segserve::DecodeImage(image.encoded, kMaxPixels);
  if (rgb.ok() &&
      (rgb->type() != CV_8UC3 || int64_t(rgb->cols) * rgb->rows > kMaxPixels)) {
    std::abort();  // Accepted something the contract refuses.
  }
  return 0;
}
