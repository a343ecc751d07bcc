#ifndef SEGSERVE_SERVER_API_REST_INFER_H_
#define SEGSERVE_SERVER_API_REST_INFER_H_

#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "inference/open_inference.pb.h"

namespace segserve {

// The binary tensor data extension's header: the JSON part's length, the
// binary data following it in the same body.
inline constexpr char kInferenceHeaderContentLength[] =
    "Inference-Header-Content-Length";

// Which outputs go back as binary data rather than JSON.
struct RestOutputs {
  bool all_binary = false;       // "binary_data_output": true on the request.
  std::set<std::string> binary;  // "binary_data": true on an output.
  bool IsBinary(const std::string& name) const {
    return all_binary || binary.count(name) > 0;
  }
};

// A KServe v2 REST infer request (JSON, and with `json_length` set the
// binary tensor data extension: the first json_length bytes of `body` are
// the JSON, the rest the inputs' binary data in input order) as the Open
// Inference Protocol's ModelInferRequest, with every input's data in
// raw_input_contents, so that the gRPC frontend's checks (ToInferCall)
// apply unchanged. The REST-only parameters (binary_data_size, binary_data,
// binary_data_output) are taken out into `outputs`. INVALID_ARGUMENT saying
// what is wrong and what is allowed.
absl::Status ParseRestInferRequest(absl::string_view body,
                                   std::optional<size_t> json_length,
                                   inference::ModelInferRequest* request,
                                   RestOutputs* outputs);

struct RestInferBody {
  std::string body;
  // Set when some output went as binary data: the JSON part's length.
  std::optional<size_t> json_length;
};

// A ModelInferResponse whose outputs are in raw_output_contents as REST's
// JSON: each output's "data" in row-major order (BYTES elements as base64
// strings, with parameters {"content_encoding": "base64"}), or, for the
// outputs `outputs` names, "binary_data_size" and the bytes after the JSON.
absl::StatusOr<RestInferBody> WriteRestInferResponse(
    const inference::ModelInferResponse& response, const RestOutputs& outputs);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_REST_INFER_H_
