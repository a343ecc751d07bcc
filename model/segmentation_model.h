#ifndef SEGSERVE_MODEL_SEGMENTATION_MODEL_H_
#define SEGSERVE_MODEL_SEGMENTATION_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

// What a batch should return besides the labels.
struct OutputKinds {
  bool confidence = false;
  // The per-class scores that blending needs (overlapping tiles averaged,
  // as sliding-window inference does) before the labels are taken.
  bool logits = false;
};

// The result of one image of a batch, at the model's input size.
struct InferenceOutput {
  cv::Mat labels;      // CV_8UC1 (<= 256 classes) or CV_16UC1 class ids.
  cv::Mat confidence;  // CV_8UC1 winning-class probability * 255, or empty.
  // CV_32F with dims {classes, height, width}: the FP32 logits resized to the
  // input size, whose argmax over classes is `labels`; empty unless asked.
  cv::Mat logits;
};

// The seam between the server and LibTorch: a loaded model on one device.
// Real implementations run builtin architectures or TorchScript modules; test
// fakes record batches and inject delays and errors. Not thread-safe: each
// model instance (one thread) owns one object.
class SegmentationModel {
 public:
  virtual ~SegmentationModel() = default;

  // Runs one batch. Each input points to 3 x input_height x input_width
  // normalized floats (CHW, RGB). Labels are computed on the model's device:
  // logits are resized bilinearly to the input size there and only the labels
  // (and what `kinds` asks for) are copied back.
  virtual absl::StatusOr<std::vector<InferenceOutput>> Infer(
      absl::Span<const float* const> inputs, OutputKinds kinds) = 0;

  // "cpu" or "cuda:N".
  virtual std::string device() const = 0;
  virtual int64_t parameter_count() const = 0;
};

}  // namespace segserve

#endif  // SEGSERVE_MODEL_SEGMENTATION_MODEL_H_
