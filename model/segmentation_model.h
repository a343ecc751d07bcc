#ifndef SEGSERVE_MODEL_SEGMENTATION_MODEL_H_
#define SEGSERVE_MODEL_SEGMENTATION_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/model_input.h"
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

  // Runs one batch of images resized to the model's input size (8-bit RGB,
  // model/model_input.h). They cross to the model's device as bytes and are
  // normalized there; labels are computed there too: logits are resized
  // bilinearly to the input size and only the labels (and what `kinds` asks
  // for) are copied back.
  virtual absl::StatusOr<std::vector<InferenceOutput>> Infer(
      absl::Span<const ModelInput> inputs, OutputKinds kinds) = 0;

  // "cpu" or "cuda:N".
  virtual std::string device() const = 0;
  virtual int64_t parameter_count() const = 0;
};

}  // namespace segserve

#endif  // SEGSERVE_MODEL_SEGMENTATION_MODEL_H_
