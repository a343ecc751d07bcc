#ifndef SEGSERVE_SERVER_CORE_METRICS_H_
#define SEGSERVE_SERVER_CORE_METRICS_H_

#include <string>

#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace segserve {

// The server's Prometheus metrics (names fixed by DESIGN.md), registered on a
// registry the caller owns and exposes. Thread-safe.
class Metrics {
 public:
  // Handles for one model version, so the request path does no label lookups.
  struct ModelMetrics {
    prometheus::Histogram* queue_seconds;
    prometheus::Histogram* preprocess_seconds;
    prometheus::Histogram* inference_seconds;  // Per batch.
    prometheus::Histogram* postprocess_seconds;
    prometheus::Histogram* batch_size;
    prometheus::Gauge* queue_depth;  // Fed by deltas: copies may share it.
  };

  // `registry` must outlive this object.
  explicit Metrics(prometheus::Registry* registry);

  ModelMetrics ForModel(const std::string& model, const std::string& version);

  // segserve_model_ready of one version. Set by the repository, which knows
  // which copy serves: a retiring copy of a reloaded version cannot reset it.
  void SetReady(const std::string& model, const std::string& version,
                bool ready);

  // Counts a finished request with its gRPC code name (e.g. "OK",
  // "NOT_FOUND") and records its duration.
  void CountRequest(const std::string& model, const std::string& version,
                    const std::string& code, absl::Duration duration);

  prometheus::Gauge& inflight_requests() { return *inflight_; }

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_seconds_;
  prometheus::Family<prometheus::Histogram>& queue_seconds_;
  prometheus::Family<prometheus::Histogram>& preprocess_seconds_;
  prometheus::Family<prometheus::Histogram>& inference_seconds_;
  prometheus::Family<prometheus::Histogram>& postprocess_seconds_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Gauge>& inflight_family_;
  prometheus::Family<prometheus::Gauge>& model_ready_;
  prometheus::Gauge* inflight_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_METRICS_H_
