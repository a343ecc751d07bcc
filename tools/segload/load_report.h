#ifndef SEGSERVE_TOOLS_SEGLOAD_LOAD_REPORT_H_
#define SEGSERVE_TOOLS_SEGLOAD_LOAD_REPORT_H_

#include <string>
#include <utility>
#include <vector>

#include "tools/segload/load_stats.h"

namespace segserve {

// segload's outputs: terminal rows, JSON and CSV. Pure functions of their
// arguments: thread-safe.

// Everything a run reports.
struct LoadReport {
  std::vector<LoadStepResult> steps;
  // The target names by index (LoadStepResult::targets).
  std::vector<std::string> targets;
  // (key, JSON value) pairs written into "config" as they are, in order.
  std::vector<std::pair<std::string, std::string>> config;
};

// The column header and one row per step for the terminal, latencies in ms.
// The first column is the concurrency, or the rate when `open_loop`.
std::string FormatStepHeader(bool open_loop);
std::string FormatStepRow(const LoadStepResult& step, bool open_loop);

// A JSON string literal for `text`, quotes included, with escapes.
std::string JsonString(const std::string& text);
// A JSON number with 6 significant digits; null when not finite.
std::string JsonNumber(double value);

// The whole report as one JSON object and a newline:
//   {"steps":[{"concurrency":N|null,"rate":R|null,"throughput_rps":x,
//     "duration_s":s,"ok":n,"failed":n,"sent":n|null,"late_sends":n|null,
//     "max_send_lag_us":n|null,"windows":w,"stable":b|null,
//     "latency_us":{"p50","p90","p95","p99","max","mean"},
//     "client_us":{"serialize","wait","deserialize"},"errors":{"CODE":n},
//     "server_us":{"queue","preprocess","inference","postprocess"},
//     "mean_batch_size":b,"targets":[{"target":"a:1","ok":n,"failed":n}]}],
//    "config":{...}}
// The send fields are null in closed loop, "stable" without stability
// windows; "targets" lists every target of the report, in order.
std::string LoadReportJson(const LoadReport& report);

// A header line and one line per step; the same fields as the JSON (empty
// where the JSON has null), errors as "CODE=n;CODE=n".
std::string LoadReportCsv(const LoadReport& report);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_LOAD_REPORT_H_
