// The Open Inference Protocol's request path from a serialized
// ModelInferRequest: parsing, the frontend's checks (ToInferCall), then the
// answer built from results of the sizes the jobs ask for
// (FillInferResponse). Any input must end in jobs or a status, never a
// crash; every job's pixels must lie inside the request's own bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "inference/open_inference.pb.h"
#include "server/api/infer_request.h"

namespace {

constexpr int kMaxImages = 8;
constexpr int kClasses = 6;
// Results are made at the jobs' sizes: keep those small.
constexpr int64_t kMaxResultPixels = 1 << 16;

bool Inside(absl::string_view part, absl::string_view whole) {
  return part.data() >= whole.data() &&
         part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  segserve::InferCall call;
  if (!segserve::ToInferCall(request, &call).ok()) return 0;
  if (call.job.images.empty() || call.outputs.empty()) std::abort();
  // More images than the model takes: the pipeline refuses them.
  if (int(call.job.images.size()) > kMaxImages) return 0;
  const segserve::SegmentJob& request_job = call.job;
  std::vector<segserve::SegmentResult> results;
  for (const segserve::ImageInput& job : call.job.images) {
    if (job.raw) {
      const size_t bytes = size_t(job.raw_width) * size_t(job.raw_height) * 3;
      const bool inside = Inside(job.raw_data, call.pixels) ||
                          (!request.raw_input_contents().empty() &&
                           Inside(job.raw_data, request.raw_input_contents(0)));
      if (job.raw_data.size() != bytes || !inside) std::abort();
    } else if (job.encoded.empty()) {
      std::abort();
    }
    segserve::SegmentResult result;
    result.width = job.raw ? job.raw_width : 3;
    result.height = job.raw ? job.raw_height : 2;
    if (int64_t(result.width) * result.height > kMaxResultPixels) return 0;
    result.num_classes = kClasses;
    result.mask_format = request_job.mask_format;
    const size_t pixels = size_t(result.width) * size_t(result.height);
    result.mask.assign(pixels, '\1');
    if (request_job.with_confidence) result.confidence.assign(pixels, '\200');
    result.class_stats.push_back({1, "one", pixels});
    results.push_back(std::move(result));
  }
  inference::ModelInferResponse response;
  if (!segserve::FillInferResponse(request, call, std::move(results), &response)
           .ok()) {
    return 0;
  }
  if (response.outputs_size() != int(call.outputs.size())) std::abort();
  return 0;
}
