#ifndef SEGSERVE_SERVER_PIPELINE_SEGMENT_JOB_H_
#define SEGSERVE_SERVER_PIPELINE_SEGMENT_JOB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/image_codec.h"
#include "common/mask_codec.h"
#include "server/core/inference_request.h"

namespace segserve {

// The largest side of a raw image any frontend accepts (the pixel limit,
// Options::max_image_pixels, is checked when it is decoded).
inline constexpr int kMaxImageSide = 1 << 16;
// The encoded formats the pipeline decodes, for messages.
inline constexpr char kEncodedFormats[] = "JPEG, PNG, BMP, WebP or TIFF";

// One image of a request: encoded bytes, or raw pixels. The string views
// point into the frontend's request, which outlives the job.
struct ImageInput {
  bool raw = false;
  absl::string_view encoded;  // When !raw.
  int raw_width = 0;          // When raw.
  int raw_height = 0;
  PixelFormat raw_format = PixelFormat::kRgb8;
  absl::string_view raw_data;
};

// One request in the project's own types, from any frontend: one or more
// images for one model, admitted or refused as a whole and answered with
// one result per image.
struct SegmentJob {
  std::string model;    // Empty: the default model.
  int64_t version = 0;  // 0: the latest ready version.
  std::vector<ImageInput> images;
  MaskFormat mask_format = MaskFormat::kPng;
  bool with_confidence = false;
  uint32_t priority = 0;
  absl::Time deadline = absl::InfiniteFuture();
  CancelFlag cancelled;  // May be null.
};

struct ClassCount {
  int class_id = 0;
  std::string name;
  uint64_t pixels = 0;
};

struct SegmentResult {
  std::string model;
  int64_t version = 0;
  int num_classes = 0;  // The model's.
  int width = 0;        // The input image's size.
  int height = 0;
  MaskFormat mask_format = MaskFormat::kPng;
  std::string mask;
  std::string confidence;               // Row-major uint8, when asked.
  std::vector<ClassCount> class_stats;  // Present classes, ascending id.
  absl::Duration queue_time;
  absl::Duration preprocess_time;
  absl::Duration inference_time;
  absl::Duration postprocess_time;
  int batch_size = 0;  // The largest batch one of its items ran in.
  int tiles = 1;       // Batch items the image became.
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_PIPELINE_SEGMENT_JOB_H_
