#ifndef SEGSERVE_SERVER_PIPELINE_SEGMENT_PROCESSOR_H_
#define SEGSERVE_SERVER_PIPELINE_SEGMENT_PROCESSOR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "opencv2/core/mat.hpp"
#include "server/core/inference_core.h"
#include "server/pipeline/segment_job.h"

namespace segserve {

struct ImagePlan;

// The image pipeline of a request, on the inference core: one admission
// for all of its images, decode and preprocess on the pool (an image each),
// every image's batch items queued together and gathered once, then each
// mask resized and encoded on the pool. The image limits live here: pixels,
// images per request (the model's max_batch_size) and tiles per image.
// Thread-safe.
class SegmentProcessor {
 public:
  struct Options {
    int64_t max_image_pixels = 0;  // 0: no limit.
    // A JPEG sent to a STRETCH or LETTERBOX model is decoded at 1/2, 1/4 or
    // 1/8 scale when that still covers the model's input
    // (DecodeImageAtLeast); the mask keeps the image's size.
    bool reduced_jpeg_decode = true;
  };
  // One result per image of the job, in its order; or the request's error
  // (its first failure).
  using Done =
      absl::AnyInvocable<void(absl::StatusOr<std::vector<SegmentResult>>)>;

  // `core` must outlive the processor.
  SegmentProcessor(Options options, InferenceCore* core);

  // Never blocks. `done` runs exactly once, on a pool thread or the calling
  // thread (for requests refused at once).
  void Process(SegmentJob job, Done done);

 private:
  struct Call;
  struct Image;
  void Preprocess(std::shared_ptr<Call> call, size_t index);
  // Queues every image's items as one unit, once the last is preprocessed.
  void Submit(std::shared_ptr<Call> call);
  // Every item is back: each image's answer, or the request's first error.
  void Gathered(std::shared_ptr<Call> call, std::vector<BatchResult> results);
  // The batch items of a decoded image: itself, or its tiles. `rgb` may be
  // smaller than the image (a reduced JPEG decode), never for SLIDE.
  absl::StatusOr<std::vector<std::unique_ptr<InferenceRequest>>> PlanItems(
      const cv::Mat& rgb, const ImageSize& image, const ServedModel& model,
      ImagePlan& plan) const;
  absl::StatusOr<SegmentResult> Postprocess(Call& call, Image& image,
                                            std::vector<BatchResult> items);
  void Finish(Call& call, absl::StatusOr<std::vector<SegmentResult>> result);

  const Options options_;
  InferenceCore* const core_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_PIPELINE_SEGMENT_PROCESSOR_H_
