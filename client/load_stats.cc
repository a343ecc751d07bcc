#include "client/load_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace segserve {

int64_t Percentile(absl::Span<const int64_t> sorted, double q) {
  if (sorted.empty()) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest value with at least q of the samples at or
  // below it.
  const auto rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[rank == 0 ? 0 : rank - 1];
}

LoadStepResult SummarizeStep(int concurrency,
                             absl::Span<const LoadSample> samples,
                             double elapsed_s) {
  LoadStepResult step;
  step.concurrency = concurrency;
  step.elapsed_s = elapsed_s;
  std::vector<int64_t> latencies;
  latencies.reserve(samples.size());
  double queue = 0, preprocess = 0, inference = 0, postprocess = 0;
  double batch_sum = 0;
  int64_t batch_count = 0;
  for (const LoadSample& sample : samples) {
    if (sample.code != absl::StatusCode::kOk) {
      ++step.errors[absl::StatusCodeToString(sample.code)];
      continue;
    }
    latencies.push_back(sample.latency_us);
    queue += sample.queue_us;
    preprocess += sample.preprocess_us;
    inference += sample.inference_us;
    postprocess += sample.postprocess_us;
    if (sample.batch_size > 0) {
      batch_sum += sample.batch_size;
      ++batch_count;
    }
  }
  step.ok = static_cast<int64_t>(latencies.size());
  step.throughput_rps = elapsed_s > 0 ? step.ok / elapsed_s : 0;
  if (step.ok > 0) {
    std::sort(latencies.begin(), latencies.end());
    step.latency_us.p50 = Percentile(latencies, 0.50);
    step.latency_us.p90 = Percentile(latencies, 0.90);
    step.latency_us.p95 = Percentile(latencies, 0.95);
    step.latency_us.p99 = Percentile(latencies, 0.99);
    step.latency_us.max = latencies.back();
    double sum = 0;
    for (int64_t latency : latencies) sum += latency;
    step.latency_us.mean = sum / step.ok;
    step.server_queue_us = queue / step.ok;
    step.server_preprocess_us = preprocess / step.ok;
    step.server_inference_us = inference / step.ok;
    step.server_postprocess_us = postprocess / step.ok;
  }
  if (batch_count > 0) step.mean_batch_size = batch_sum / batch_count;
  return step;
}

std::string FormatStepHeader() {
  return absl::StrFormat(
      "%5s %9s %8s %8s %8s %8s %8s | %8s %8s %8s %8s %6s | %s", "conc", "req/s",
      "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms", "queue", "preproc",
      "infer", "postproc", "batch", "errors");
}

std::string FormatStepRow(const LoadStepResult& step) {
  auto ms = [](double us) { return us / 1000.0; };
  std::string errors = step.errors.empty() ? "none" : "";
  for (const auto& [code, count] : step.errors) {
    if (!errors.empty()) errors += " ";
    absl::StrAppend(&errors, code, "=", count);
  }
  return absl::StrFormat(
      "%5d %9.1f %8.2f %8.2f %8.2f %8.2f %8.2f | %8.2f %8.2f %8.2f %8.2f "
      "%6.2f | %s",
      step.concurrency, step.throughput_rps, ms(step.latency_us.p50),
      ms(step.latency_us.p90), ms(step.latency_us.p95), ms(step.latency_us.p99),
      ms(step.latency_us.max), ms(step.server_queue_us),
      ms(step.server_preprocess_us), ms(step.server_inference_us),
      ms(step.server_postprocess_us), step.mean_batch_size, errors);
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(
              &out, "\\u%04x", static_cast<int>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

namespace {

// Finite numbers only: JSON has no NaN or infinity.
std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  return absl::StrFormat("%.6g", value);
}

std::string StepJson(const LoadStepResult& step) {
  std::vector<std::string> errors;
  for (const auto& [code, count] : step.errors) {
    errors.push_back(absl::StrCat(JsonString(code), ":", count));
  }
  const LatencySummary& l = step.latency_us;
  return absl::StrCat(
      "{\"concurrency\":", step.concurrency,
      ",\"rate\":null,\"throughput_rps\":", JsonNumber(step.throughput_rps),
      ",\"duration_s\":", JsonNumber(step.elapsed_s), ",\"ok\":", step.ok,
      ",\"latency_us\":{\"p50\":", l.p50, ",\"p90\":", l.p90,
      ",\"p95\":", l.p95, ",\"p99\":", l.p99, ",\"max\":", l.max,
      ",\"mean\":", JsonNumber(l.mean), "},\"errors\":{",
      absl::StrJoin(errors, ","),
      "},\"server_us\":{\"queue\":", JsonNumber(step.server_queue_us),
      ",\"preprocess\":", JsonNumber(step.server_preprocess_us),
      ",\"inference\":", JsonNumber(step.server_inference_us),
      ",\"postprocess\":", JsonNumber(step.server_postprocess_us),
      "},\"mean_batch_size\":", JsonNumber(step.mean_batch_size), "}");
}

}  // namespace

std::string LoadReportJson(
    absl::Span<const LoadStepResult> steps,
    const std::vector<std::pair<std::string, std::string>>& config) {
  std::vector<std::string> step_json;
  for (const LoadStepResult& step : steps) step_json.push_back(StepJson(step));
  std::vector<std::string> config_json;
  for (const auto& [key, value] : config) {
    config_json.push_back(absl::StrCat(JsonString(key), ":", value));
  }
  return absl::StrCat("{\"steps\":[", absl::StrJoin(step_json, ","),
                      "],\"config\":{", absl::StrJoin(config_json, ","),
                      "}}\n");
}

}  // namespace segserve
