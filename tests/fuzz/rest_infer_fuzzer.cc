// The HTTP frontend's infer request path from raw body bytes: the KServe v2
// REST JSON (and the binary tensor data extension) parsed into a
// ModelInferRequest, the frontend's checks (ToInferCall), then the answer
// built and written back as REST JSON with some outputs binary. The first
// byte picks the form: odd, the binary extension with the JSON part's
// length in the next two bytes; even, plain JSON. Any input must end in a
// status or an answer, never a crash or unbounded recursion.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "inference/open_inference.pb.h"
#include "server/api/infer_request.h"
#include "server/api/rest_infer.h"

namespace {

constexpr int kMaxImages = 8;
// Results are made at the images' sizes: keep those small.
constexpr int64_t kMaxResultPixels = 1 << 16;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  absl::string_view body(reinterpret_cast<const char*>(data) + 3, size - 3);
  std::optional<size_t> json_length;
  if (data[0] & 1) json_length = size_t(data[1]) | (size_t(data[2]) << 8);
  inference::ModelInferRequest request;
  segserve::RestOutputs outputs;
  if (!segserve::ParseRestInferRequest(body, json_length, &request, &outputs)
           .ok()) {
    return 0;
  }
  // Every input's data went to raw_input_contents, one entry per input.
  if (request.raw_input_contents_size() != request.inputs_size()) std::abort();
  request.set_model_name("m");
  segserve::InferCall call;
  if (!segserve::ToInferCall(request, &call).ok()) return 0;
  if (call.job.images.empty() || call.outputs.empty()) std::abort();
  if (int(call.job.images.size()) > kMaxImages) return 0;
  std::vector<segserve::SegmentResult> results;
  for (const segserve::ImageInput& image : call.job.images) {
    segserve::SegmentResult result;
    result.model = "m";
    result.version = 1;
    result.num_classes = 3;
    result.width = image.raw ? image.raw_width : 3;
    result.height = image.raw ? image.raw_height : 2;
    if (int64_t(result.width) * result.height > kMaxResultPixels) return 0;
    result.mask_format = call.job.mask_format;
    const size_t pixels = size_t(result.width) * size_t(result.height);
    result.mask.assign(pixels, '\1');
    if (call.job.with_confidence) result.confidence.assign(pixels, '\200');
    result.class_stats.push_back({1, "one", pixels});
    results.push_back(std::move(result));
  }
  inference::ModelInferResponse response;
  if (!segserve::FillInferResponse(request, call, std::move(results), &response)
           .ok()) {
    return 0;
  }
  auto written = segserve::WriteRestInferResponse(response, outputs);
  if (!written.ok()) std::abort();  // Every answer has a REST form.
  if (written->json_length.has_value() &&
      *written->json_length > written->body.size()) {
    std::abort();
  }
  return 0;
}
