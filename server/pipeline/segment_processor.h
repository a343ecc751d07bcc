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

// The image pipeline of a Segment request, on the inference core: decode
// and preprocess on the pool, the core's queue and batches, then resize and
// encode the mask on the pool. Thread-safe.
class SegmentProcessor {
 public:
  struct Options {
    int64_t max_image_pixels = 0;  // 0: no limit.
  };
  using Done = absl::AnyInvocable<void(absl::StatusOr<SegmentResult>)>;

  // `core` must outlive the processor.
  SegmentProcessor(Options options, InferenceCore* core);

  // Never blocks. `done` runs exactly once, on a pool thread or the calling
  // thread (for requests refused at once).
  void Process(SegmentJob job, Done done);

 private:
  struct Call;
  void Preprocess(std::shared_ptr<Call> call);
  // The batch items of a decoded image: itself, or its tiles.
  absl::StatusOr<std::vector<std::unique_ptr<InferenceRequest>>> PlanItems(
      const cv::Mat& rgb, const ServedModel& model, ImagePlan& plan) const;
  void Postprocess(std::shared_ptr<Call> call, std::vector<BatchResult> items);
  void Finish(Call& call, absl::StatusOr<SegmentResult> result);

  const Options options_;
  InferenceCore* const core_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_PIPELINE_SEGMENT_PROCESSOR_H_
