// The metrics endpoint's request parser on any bytes: every input gets one
// of its three answers, and only a GET of /metrics gets the metrics.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "server/metrics_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view request(reinterpret_cast<const char*>(data), size);
  const segserve::MetricsRequest kind =
      segserve::ClassifyMetricsRequest(request);
  if (kind == segserve::MetricsRequest::kMetrics &&
      !absl::StartsWith(request, "GET /metrics")) {
    std::abort();
  }
  return 0;
}
