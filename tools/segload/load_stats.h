#ifndef SEGSERVE_TOOLS_SEGLOAD_LOAD_STATS_H_
#define SEGSERVE_TOOLS_SEGLOAD_LOAD_STATS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace segserve {

// Statistics of segload, the load generator; kept apart from its main() so
// they can be tested. Plain functions on values: thread-compatible.

// One finished request as segload saw it. Times in microseconds.
struct LoadSample {
  int64_t seq = 0;  // The request's number within its step, warm-up first.
  int target = 0;   // Index into segload's target list.
  absl::StatusCode code = absl::StatusCode::kOk;
  // wait_us + deserialize_us: what an application waits for a mask.
  int64_t latency_us = 0;
  // The RPC: from just before the call is issued to its result. gRPC
  // serializes the request and parses the response inside this time.
  int64_t wait_us = 0;
  // The protobuf serialization cost of this request (SerializeToString,
  // timed once per distinct request before the run; gRPC does the same work
  // inside wait_us).
  double serialize_us = 0;
  // Decoding the response's mask to a label map (0 when not decoded).
  int64_t deserialize_us = 0;
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

struct TargetCounts {
  int64_t ok = 0;
  int64_t failed = 0;
};

// The result of one load step (or of one measurement window).
struct LoadStepResult {
  // The load level: closed loop sets concurrency (rate_rps 0), open loop
  // sets rate_rps (concurrency 0).
  int concurrency = 0;
  double rate_rps = 0;

  double elapsed_s = 0;       // Measured time.
  int64_t ok = 0;             // Successful responses.
  int64_t failed = 0;         // Failed requests.
  double throughput_rps = 0;  // ok / elapsed_s.
  LatencySummary latency_us;  // Over successful responses only.
  // Over failed requests, by status code name: how fast refusals come (an
  // overloaded server should refuse in milliseconds, not time out).
  std::map<std::string, LatencySummary> failed_latency_us;
  // Means over successful responses, microseconds (see LoadSample).
  double client_serialize_us = 0;
  double client_wait_us = 0;
  double client_deserialize_us = 0;
  // Failed requests by status code name ("UNAVAILABLE"), sorted by name.
  std::map<std::string, int64_t> errors;
  // Means of the server's timing over successful responses, microseconds.
  double server_queue_us = 0;
  double server_preprocess_us = 0;
  double server_inference_us = 0;
  double server_postprocess_us = 0;
  double mean_batch_size = 0;  // Over responses that report one (> 0).
  // Requests by target index; as long as the highest index seen + 1.
  std::vector<TargetCounts> targets;

  // Open loop: requests sent in the measured time, how many of them left
  // more than kLateSendUs after their scheduled time, and the largest delay.
  int64_t sent = 0;
  int64_t late_sends = 0;
  int64_t max_send_lag_us = 0;

  // Measurement windows run, whether the stability rule was applied (not for
  // a fixed duration or request count, which is one window) and whether the
  // last windows met it (see IsStable).
  int windows = 0;
  bool stability_checked = false;
  bool stable = false;
};

// An open-loop send counts as late when it leaves more than this after its
// scheduled time (the scheduler sleeps with about 0.1 ms of jitter).
inline constexpr int64_t kLateSendUs = 1000;

// The nearest-rank percentile (q in [0, 1]) of ascending `sorted`; 0 when it
// is empty. q = 0.5 of {1, 2, 3, 4} is 2; q = 1 is the maximum.
int64_t Percentile(absl::Span<const int64_t> sorted, double q);

// Fills the measurement fields of a result (not the load level, the send
// counts or the window fields) from the samples of `elapsed_s` seconds.
LoadStepResult SummarizeSamples(absl::Span<const LoadSample> samples,
                                double elapsed_s);

// What the stability rule looks at in each window.
struct WindowStats {
  double throughput_rps = 0;
  int64_t p95_us = 0;
};

// perf_analyzer's rule: stable when there are at least `count` windows and,
// over the last `count`, every window's throughput and every window's p95
// latency lies within `percent` % of the mean of those `count` values. A
// window without a successful response is never stable.
bool IsStable(absl::Span<const WindowStats> windows, double percent,
              int count = 3);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_LOAD_STATS_H_
