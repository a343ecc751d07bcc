#ifndef SEGSERVE_SERVER_METRICS_REQUEST_H_
#define SEGSERVE_SERVER_METRICS_REQUEST_H_

#include "absl/strings/string_view.h"

namespace segserve {

// What the metrics endpoint makes of the bytes of one HTTP request.
enum class MetricsRequest {
  kMetrics,           // GET /metrics, with or without a query.
  kNotFound,          // GET of any other path.
  kMethodNotAllowed,  // Anything else, including bytes that are not HTTP.
};

// Reads the request line only; headers and bodies are ignored. Total: any
// bytes give an answer.
MetricsRequest ClassifyMetricsRequest(absl::string_view request);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_METRICS_REQUEST_H_
