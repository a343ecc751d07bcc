#ifndef SEGSERVE_CLIENT_LOAD_STATS_H_
#define SEGSERVE_CLIENT_LOAD_STATS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace segserve {

// Statistics of segload, the load generator; kept apart from its main() so
// they can be tested. Plain functions on values: thread-compatible.

// One finished request as segload saw it.
struct LoadSample {
  int64_t latency_us = 0;  // Client round trip, issue to response.
  absl::StatusCode code = absl::StatusCode::kOk;
  // The server's Timing, for OK responses.
  uint64_t queue_us = 0;
  uint64_t preprocess_us = 0;
  uint64_t inference_us = 0;
  uint64_t postprocess_us = 0;
  uint32_t batch_size = 0;
};

struct LatencySummary {
  int64_t p50 = 0;
  int64_t p90 = 0;
  int64_t p95 = 0;
  int64_t p99 = 0;
  int64_t max = 0;
  double mean = 0;
};

// The result of one concurrency step.
struct LoadStepResult {
  int concurrency = 0;
  double elapsed_s = 0;       // From the first request to the last response.
  int64_t ok = 0;             // Successful responses.
  double throughput_rps = 0;  // ok / elapsed_s.
  LatencySummary latency_us;  // Over successful responses only.
  // Failed requests by status code name ("UNAVAILABLE"), sorted by name.
  std::map<std::string, int64_t> errors;
  // Means of the server's timing over successful responses, microseconds.
  double server_queue_us = 0;
  double server_preprocess_us = 0;
  double server_inference_us = 0;
  double server_postprocess_us = 0;
  double mean_batch_size = 0;  // Over responses that report one (> 0).
};

// The nearest-rank percentile (q in [0, 1]) of ascending `sorted`; 0 when it
// is empty. q = 0.5 of {1, 2, 3, 4} is 2; q = 1 is the maximum.
int64_t Percentile(absl::Span<const int64_t> sorted, double q);

LoadStepResult SummarizeStep(int concurrency,
                             absl::Span<const LoadSample> samples,
                             double elapsed_s);

// The column header and one row per step for the terminal, latencies in ms.
std::string FormatStepHeader();
std::string FormatStepRow(const LoadStepResult& step);

// A JSON string literal for `text`, quotes included, with escapes.
std::string JsonString(const std::string& text);

// The whole report:
//   {"steps":[{"concurrency":N,"rate":null,"throughput_rps":x,"duration_s":s,
//    "ok":n,"latency_us":{"p50":..,"p90":..,"p95":..,"p99":..,"max":..,
//    "mean":..},"errors":{"CODE":n},"server_us":{"queue":..,"preprocess":..,
//    "inference":..,"postprocess":..},"mean_batch_size":b}],"config":{...}}
// `config` holds (key, JSON value) pairs written as they are, in order.
std::string LoadReportJson(
    absl::Span<const LoadStepResult> steps,
    const std::vector<std::pair<std::string, std::string>>& config);

}  // namespace segserve

#endif  // SEGSERVE_CLIENT_LOAD_STATS_H_
