#ifndef SEGSERVE_SERVER_API_INFER_REQUEST_H_
#define SEGSERVE_SERVER_API_INFER_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "inference/open_inference.pb.h"
#include "server/pipeline/segment_job.h"

namespace segserve {

// The tensors of a segmentation model in the Open Inference Protocol.
inline constexpr char kImageTensor[] = "IMAGE";
inline constexpr char kMaskTensor[] = "MASK";
inline constexpr char kConfidenceTensor[] = "CONFIDENCE";
inline constexpr char kClassPixelsTensor[] = "CLASS_PIXELS";

// One ModelInfer request in the project's own types: one SegmentJob with
// the images of its batch, and how to answer.
struct InferCall {
  SegmentJob job;
  // The answer's MASK, CONFIDENCE and CLASS_PIXELS have a batch dimension
  // (the IMAGE tensor had one).
  bool batched = false;
  // The answer goes in raw_output_contents (the inputs came raw), else in
  // each output's contents.
  bool raw_outputs = true;
  // The outputs asked for, in the order to answer them.
  std::vector<std::string> outputs;
  // UINT8 pixels sent as contents, copied to bytes; the jobs point here.
  std::string pixels;
};

// Checks `request` and converts it; the job's views point into `request`
// and `call->pixels`, which must outlive them. The model's own limits
// (images per request) are the pipeline's to check. Errors are
// INVALID_ARGUMENT and say what was wrong and what is allowed.
absl::Status ToInferCall(const inference::ModelInferRequest& request,
                         InferCall* call);

// Appends `element` to `raw` as one BYTES element of the protocol's raw
// form: its length as 4 little-endian bytes, then its bytes.
void AppendBytesElement(absl::string_view element, std::string* raw);

// Fills `response` from the results of `call`'s images, in their order.
// Fails (INVALID_ARGUMENT) when batched images came back of different sizes.
absl::Status FillInferResponse(const inference::ModelInferRequest& request,
                               const InferCall& call,
                               std::vector<SegmentResult> results,
                               inference::ModelInferResponse* response);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_INFER_REQUEST_H_
