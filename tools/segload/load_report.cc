#include "tools/segload/load_report.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace segserve {
namespace {

bool OpenLoop(const LoadStepResult& step) { return step.rate_rps > 0; }

std::string ErrorsText(const LoadStepResult& step, absl::string_view separator,
                       absl::string_view none) {
  if (step.errors.empty()) return std::string(none);
  std::vector<std::string> parts;
  for (const auto& [code, count] : step.errors) {
    parts.push_back(absl::StrCat(code, "=", count));
  }
  return absl::StrJoin(parts, separator);
}

std::string WindowsText(const LoadStepResult& step) {
  return absl::StrCat(step.windows,
                      step.stability_checked && !step.stable ? "*" : "");
}

// The flat fields of a step, in CSV column order; "" stands for null.
std::vector<std::pair<const char*, std::string>> FlatFields(
    const LoadStepResult& step) {
  const bool open = OpenLoop(step);
  auto open_only = [open](int64_t value) {
    return open ? absl::StrCat(value) : std::string();
  };
  auto number = [](double value) {
    return std::isfinite(value) ? absl::StrFormat("%.6g", value)
                                : std::string();
  };
  const LatencySummary& l = step.latency_us;
  return {
      {"concurrency", open ? "" : absl::StrCat(step.concurrency)},
      {"rate", open ? number(step.rate_rps) : ""},
      {"throughput_rps", number(step.throughput_rps)},
      {"duration_s", number(step.elapsed_s)},
      {"ok", absl::StrCat(step.ok)},
      {"failed", absl::StrCat(step.failed)},
      {"sent", open_only(step.sent)},
      {"late_sends", open_only(step.late_sends)},
      {"max_send_lag_us", open_only(step.max_send_lag_us)},
      {"windows", absl::StrCat(step.windows)},
      {"stable",
       step.stability_checked ? (step.stable ? "true" : "false") : ""},
      {"p50_us", absl::StrCat(l.p50)},
      {"p90_us", absl::StrCat(l.p90)},
      {"p95_us", absl::StrCat(l.p95)},
      {"p99_us", absl::StrCat(l.p99)},
      {"max_us", absl::StrCat(l.max)},
      {"mean_us", number(l.mean)},
      {"client_serialize_us", number(step.client_serialize_us)},
      {"client_wait_us", number(step.client_wait_us)},
      {"client_deserialize_us", number(step.client_deserialize_us)},
      {"server_queue_us", number(step.server_queue_us)},
      {"server_preprocess_us", number(step.server_preprocess_us)},
      {"server_inference_us", number(step.server_inference_us)},
      {"server_postprocess_us", number(step.server_postprocess_us)},
      {"mean_batch_size", number(step.mean_batch_size)},
      {"errors", ErrorsText(step, ";", "")},
  };
}

std::string OrNull(const std::string& value) {
  return value.empty() ? "null" : value;
}

std::string StepJson(const LoadStepResult& step,
                     const std::vector<std::string>& target_names) {
  const std::vector<std::pair<const char*, std::string>> flat =
      FlatFields(step);
  auto field = [&flat](absl::string_view name) {
    for (const auto& [key, value] : flat) {
      if (key == name) return OrNull(value);
    }
    return std::string("null");
  };
  std::vector<std::string> errors;
  for (const auto& [code, count] : step.errors) {
    errors.push_back(absl::StrCat(JsonString(code), ":", count));
  }
  std::vector<std::string> targets;
  for (size_t i = 0; i < target_names.size(); ++i) {
    const TargetCounts counts =
        i < step.targets.size() ? step.targets[i] : TargetCounts();
    targets.push_back(absl::StrCat("{\"target\":", JsonString(target_names[i]),
                                   ",\"ok\":", counts.ok,
                                   ",\"failed\":", counts.failed, "}"));
  }
  std::string json = "{";
  for (const char* key :
       {"concurrency", "rate", "throughput_rps", "duration_s", "ok", "failed",
        "sent", "late_sends", "max_send_lag_us", "windows", "stable"}) {
    absl::StrAppend(&json, "\"", key, "\":", field(key), ",");
  }
  auto latency_json = [](const LatencySummary& l) {
    return absl::StrCat("{\"p50\":", l.p50, ",\"p90\":", l.p90,
                        ",\"p95\":", l.p95, ",\"p99\":", l.p99,
                        ",\"max\":", l.max, ",\"mean\":", JsonNumber(l.mean),
                        "}");
  };
  absl::StrAppend(&json, "\"latency_us\":", latency_json(step.latency_us), ",");
  std::vector<std::string> failed_latencies;
  for (const auto& [code, latency] : step.failed_latency_us) {
    failed_latencies.push_back(
        absl::StrCat("\"", code, "\":", latency_json(latency)));
  }
  absl::StrAppend(&json, "\"failed_latency_us\":{",
                  absl::StrJoin(failed_latencies, ","), "},");
  absl::StrAppend(
      &json,
      "\"client_us\":{\"serialize\":", JsonNumber(step.client_serialize_us),
      ",\"wait\":", JsonNumber(step.client_wait_us),
      ",\"deserialize\":", JsonNumber(step.client_deserialize_us), "},");
  absl::StrAppend(&json, "\"errors\":{", absl::StrJoin(errors, ","), "},");
  absl::StrAppend(
      &json, "\"server_us\":{\"queue\":", JsonNumber(step.server_queue_us),
      ",\"preprocess\":", JsonNumber(step.server_preprocess_us),
      ",\"inference\":", JsonNumber(step.server_inference_us),
      ",\"postprocess\":", JsonNumber(step.server_postprocess_us), "},");
  absl::StrAppend(&json,
                  "\"mean_batch_size\":", JsonNumber(step.mean_batch_size),
                  ",\"targets\":[", absl::StrJoin(targets, ","), "]}");
  return json;
}

}  // namespace

std::string FormatStepHeader(bool open_loop) {
  return absl::StrFormat(
      "%7s %9s %8s %8s %8s %8s %8s | %7s %8s %8s | %8s %8s %8s %8s %6s | %4s "
      "%6s | %s",
      open_loop ? "rate/s" : "conc", "req/s", "p50 ms", "p90 ms", "p95 ms",
      "p99 ms", "max ms", "ser ms", "wait ms", "deser ms", "queue", "preproc",
      "infer", "postproc", "batch", "win", "late", "errors");
}

std::string FormatStepRow(const LoadStepResult& step, bool open_loop) {
  auto ms = [](double us) { return us / 1000.0; };
  const std::string level = open_loop ? absl::StrFormat("%g", step.rate_rps)
                                      : absl::StrCat(step.concurrency);
  const std::string late =
      open_loop ? absl::StrCat(step.late_sends) : std::string("-");
  return absl::StrFormat(
      "%7s %9.1f %8.2f %8.2f %8.2f %8.2f %8.2f | %7.3f %8.2f %8.3f | %8.2f "
      "%8.2f %8.2f %8.2f %6.2f | %4s %6s | %s",
      level, step.throughput_rps, ms(step.latency_us.p50),
      ms(step.latency_us.p90), ms(step.latency_us.p95), ms(step.latency_us.p99),
      ms(step.latency_us.max), ms(step.client_serialize_us),
      ms(step.client_wait_us), ms(step.client_deserialize_us),
      ms(step.server_queue_us), ms(step.server_preprocess_us),
      ms(step.server_inference_us), ms(step.server_postprocess_us),
      step.mean_batch_size, WindowsText(step), late,
      ErrorsText(step, " ", "none"));
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

std::string JsonNumber(double value) {
  // JSON has no NaN or infinity.
  if (!std::isfinite(value)) return "null";
  return absl::StrFormat("%.6g", value);
}

std::string LoadReportJson(const LoadReport& report) {
  std::vector<std::string> steps;
  for (const LoadStepResult& step : report.steps) {
    steps.push_back(StepJson(step, report.targets));
  }
  std::vector<std::string> config;
  for (const auto& [key, value] : report.config) {
    config.push_back(absl::StrCat(JsonString(key), ":", value));
  }
  return absl::StrCat("{\"steps\":[", absl::StrJoin(steps, ","),
                      "],\"config\":{", absl::StrJoin(config, ","), "}}\n");
}

std::string LoadReportCsv(const LoadReport& report) {
  std::vector<std::string> header;
  for (const auto& [key, value] : FlatFields(LoadStepResult())) {
    header.push_back(key);
  }
  std::string csv = absl::StrCat(absl::StrJoin(header, ","), "\n");
  for (const LoadStepResult& step : report.steps) {
    std::vector<std::string> values;
    for (auto& [key, value] : FlatFields(step)) values.push_back(value);
    absl::StrAppend(&csv, absl::StrJoin(values, ","), "\n");
  }
  return csv;
}

}  // namespace segserve
