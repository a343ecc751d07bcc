#include "server/core/metrics.h"

namespace segserve {
namespace {

// 0.25 ms .. ~16 s, doubling: covers a cached tiny image up to a long queue.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (double b = 0.00025; b < 20; b *= 2) buckets.push_back(b);
  return buckets;
}

prometheus::Family<prometheus::Histogram>& Seconds(
    prometheus::Registry* registry, const std::string& name,
    const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(*registry);
}

}  // namespace

Metrics::Metrics(prometheus::Registry* registry)
    : requests_(prometheus::BuildCounter()
                    .Name("segserve_requests_total")
                    .Help("Segment requests by model, version and gRPC code")
                    .Register(*registry)),
      request_seconds_(Seconds(registry, "segserve_request_duration_seconds",
                               "Time from receipt to response per request")),
      queue_seconds_(Seconds(registry, "segserve_queue_duration_seconds",
                             "Time a request waited in its model's queue")),
      preprocess_seconds_(
          Seconds(registry, "segserve_preprocess_duration_seconds",
                  "Decode, resize and normalize time per request")),
      inference_seconds_(Seconds(registry,
                                 "segserve_inference_duration_seconds",
                                 "Model execution time per batch")),
      postprocess_seconds_(
          Seconds(registry, "segserve_postprocess_duration_seconds",
                  "Mask resize and encoding time per request")),
      batch_size_(prometheus::BuildHistogram()
                      .Name("segserve_batch_size")
                      .Help("Number of requests per executed batch")
                      .Register(*registry)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("segserve_queue_depth")
                       .Help("Requests waiting in the model's queue")
                       .Register(*registry)),
      inflight_family_(prometheus::BuildGauge()
                           .Name("segserve_inflight_requests")
                           .Help("Segment requests accepted and not yet "
                                 "answered")
                           .Register(*registry)),
      model_ready_(prometheus::BuildGauge()
                       .Name("segserve_model_ready")
                       .Help("1 when the model version serves requests")
                       .Register(*registry)),
      inflight_(&inflight_family_.Add({})) {}

Metrics::ModelMetrics Metrics::ForModel(const std::string& model,
                                        const std::string& version) {
  const prometheus::Labels labels = {{"model", model}, {"version", version}};
  const auto buckets = LatencyBuckets();
  return ModelMetrics{
      &queue_seconds_.Add(labels, buckets),
      &preprocess_seconds_.Add(labels, buckets),
      &inference_seconds_.Add(labels, buckets),
      &postprocess_seconds_.Add(labels, buckets),
      &batch_size_.Add(
          labels,
          prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128}),
      &queue_depth_.Add(labels),
  };
}

void Metrics::SetReady(const std::string& model, const std::string& version,
                       bool ready) {
  model_ready_.Add({{"model", model}, {"version", version}}).Set(ready ? 1 : 0);
}

void Metrics::CountRequest(const std::string& model, const std::string& version,
                           const std::string& code, absl::Duration duration) {
  requests_.Add({{"model", model}, {"version", version}, {"code", code}})
      .Increment();
  request_seconds_
      .Add({{"model", model}, {"version", version}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(duration));
}

}  // namespace segserve
