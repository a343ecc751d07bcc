#include "server/metrics_request.h"

#include "absl/strings/match.h"

namespace segserve {

MetricsRequest ClassifyMetricsRequest(absl::string_view request) {
  if (!absl::StartsWith(request, "GET ")) {
    return MetricsRequest::kMethodNotAllowed;
  }
  const size_t path_end = request.find(' ', 4);
  if (path_end == absl::string_view::npos) return MetricsRequest::kNotFound;
  const absl::string_view path = request.substr(4, path_end - 4);
  if (path == "/metrics" || absl::StartsWith(path, "/metrics?")) {
    return MetricsRequest::kMetrics;
  }
  return MetricsRequest::kNotFound;
}

}  // namespace segserve
