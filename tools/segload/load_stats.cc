#include "tools/segload/load_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace segserve {

int64_t Percentile(absl::Span<const int64_t> sorted, double q) {
  if (sorted.empty()) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest value with at least q of the samples at or
  // below it.
  const auto rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[rank == 0 ? 0 : rank - 1];
}

// Percentiles and mean of `latencies` (sorted here); zeros when empty.
LatencySummary SummarizeLatencies(std::vector<int64_t> latencies) {
  LatencySummary summary;
  if (latencies.empty()) return summary;
  std::sort(latencies.begin(), latencies.end());
  summary.p50 = Percentile(latencies, 0.50);
  summary.p90 = Percentile(latencies, 0.90);
  summary.p95 = Percentile(latencies, 0.95);
  summary.p99 = Percentile(latencies, 0.99);
  summary.max = latencies.back();
  double sum = 0;
  for (int64_t latency : latencies) sum += latency;
  summary.mean = sum / static_cast<double>(latencies.size());
  return summary;
}

LoadStepResult SummarizeSamples(absl::Span<const LoadSample> samples,
                                double elapsed_s) {
  LoadStepResult step;
  step.elapsed_s = elapsed_s;
  std::vector<int64_t> latencies;
  latencies.reserve(samples.size());
  std::map<std::string, std::vector<int64_t>> failed_latencies;
  double queue = 0, preprocess = 0, inference = 0, postprocess = 0;
  double serialize = 0, wait = 0, deserialize = 0;
  double batch_sum = 0;
  int64_t batch_count = 0;
  for (const LoadSample& sample : samples) {
    const size_t target = static_cast<size_t>(std::max(sample.target, 0));
    if (step.targets.size() <= target) step.targets.resize(target + 1);
    if (sample.code != absl::StatusCode::kOk) {
      const std::string code = absl::StatusCodeToString(sample.code);
      ++step.errors[code];
      ++step.targets[target].failed;
      failed_latencies[code].push_back(sample.latency_us);
      continue;
    }
    ++step.targets[target].ok;
    latencies.push_back(sample.latency_us);
    serialize += sample.serialize_us;
    wait += sample.wait_us;
    deserialize += sample.deserialize_us;
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
  step.failed = static_cast<int64_t>(samples.size()) - step.ok;
  step.throughput_rps = elapsed_s > 0 ? step.ok / elapsed_s : 0;
  step.latency_us = SummarizeLatencies(std::move(latencies));
  for (auto& [code, latencies_of_code] : failed_latencies) {
    step.failed_latency_us[code] =
        SummarizeLatencies(std::move(latencies_of_code));
  }
  if (step.ok > 0) {
    const double n = static_cast<double>(step.ok);
    step.client_serialize_us = serialize / n;
    step.client_wait_us = wait / n;
    step.client_deserialize_us = deserialize / n;
    step.server_queue_us = queue / n;
    step.server_preprocess_us = preprocess / n;
    step.server_inference_us = inference / n;
    step.server_postprocess_us = postprocess / n;
  }
  if (batch_count > 0) step.mean_batch_size = batch_sum / batch_count;
  return step;
}

bool IsStable(absl::Span<const WindowStats> windows, double percent,
              int count) {
  if (count < 1 || windows.size() < static_cast<size_t>(count)) return false;
  const absl::Span<const WindowStats> last =
      windows.subspan(windows.size() - count);
  double throughput_mean = 0, p95_mean = 0;
  for (const WindowStats& w : last) {
    if (!(w.throughput_rps > 0)) return false;
    throughput_mean += w.throughput_rps / count;
    p95_mean += static_cast<double>(w.p95_us) / count;
  }
  const double limit = percent / 100.0;
  for (const WindowStats& w : last) {
    if (std::abs(w.throughput_rps - throughput_mean) >
            limit * throughput_mean ||
        std::abs(static_cast<double>(w.p95_us) - p95_mean) > limit * p95_mean) {
      return false;
    }
  }
  return true;
}

}  // namespace segserve
