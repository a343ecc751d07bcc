#ifndef SEGSERVE_TOOLS_SEGLOAD_HTTP_SENDER_H_
#define SEGSERVE_TOOLS_SEGLOAD_HTTP_SENDER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/segload/load_inputs.h"
#include "tools/segload/request_sender.h"

namespace segserve {

struct HttpSenderOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  // The image endpoint (POST .../segment, the image as the body) instead
  // of KServe v2 REST infer (binary tensors).
  bool image_endpoint = false;
  int64_t deadline_ms = 10000;  // Sent as Request-Timeout-Ms.
  std::string bearer_token;     // Empty: none.
};

// segload's requests over HTTP/1.1 with keep-alive (libevent's evhttp
// client, one event loop thread, a connection per request in flight). The
// answers become SegmentResponses (mask and model; no timing), as the OIP
// sender's do. Every request sent must be one of `inputs`, each naming its
// model (REST paths name the model). Plain HTTP only. Thread-safe.
absl::StatusOr<std::unique_ptr<RequestSender>> MakeHttpSender(
    const HttpSenderOptions& options, const std::vector<LoadInput>& inputs);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_HTTP_SENDER_H_
