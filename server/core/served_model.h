#ifndef SEGSERVE_SERVER_CORE_SERVED_MODEL_H_
#define SEGSERVE_SERVER_CORE_SERVED_MODEL_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "model/preprocess.h"
#include "model/segmentation_model.h"
#include "segserve/v1/model_config.pb.h"
#include "server/core/dynamic_batcher.h"
#include "server/core/metrics.h"
#include "server/core/model_instance.h"
#include "server/core/model_statistics.h"
#include "server/core/service_time.h"

namespace segserve {

// Creates one model instance on `device` ("cpu" or "cuda:N") from a validated
// config and the version's weights file. The seam between the repository and
// LibTorch: tests pass a loader that returns fakes.
using ModelLoader =
    std::function<absl::StatusOr<std::unique_ptr<SegmentationModel>>(
        const v1::ModelConfig& config, const std::string& weights_path,
        const std::string& device)>;

// One loaded, ready version of a model: its queue and its instances.
// Thread-safe.
class ServedModel {
 public:
  struct Options {
    v1::ModelConfig config;  // Validated, defaults applied.
    int64_t version = 0;
    std::string weights_path;
    std::vector<std::string> devices;  // One instance each; InstanceDevices.
    ModelLoader loader;
    Clock* clock = nullptr;      // Must outlive the model.
    Metrics* metrics = nullptr;  // Must outlive the model.
    // A batch running longer than this is expired by a watchdog: its
    // requests get UNAVAILABLE and its instance goes out of service; with
    // no instance left, the version refuses requests. Zero: no watchdog.
    absl::Duration batch_timeout = absl::ZeroDuration();
  };

  // Loads every instance of the config's instance groups and runs the warmup
  // batches. Fails with the first instance's error.
  static absl::StatusOr<std::unique_ptr<ServedModel>> Create(Options options);

  // Drains the queue and joins the instances.
  ~ServedModel();

  const v1::ModelConfig& config() const { return options_.config; }
  int64_t version() const { return options_.version; }
  const PreprocessOptions& preprocess() const { return preprocess_; }
  const Metrics::ModelMetrics& metrics() const { return metrics_; }
  // Counts and times since this copy loaded (the OIP's ModelStatistics).
  ModelStatistics& statistics() const { return statistics_; }
  const std::vector<std::string>& devices() const { return options_.devices; }
  int64_t parameter_count() const { return parameter_count_; }

  // Whether some instance still takes batches (see Options::batch_timeout).
  bool healthy() const;

  // Requests admitted to this version (RequestTicket) and not yet answered.
  int inflight() const { return inflight_.load(); }
  // Batch items (images, tiles) waiting in the queue.
  int queue_depth() const { return batcher_.queue_depth(); }

  // When `items` more batch items would be done if admitted now, behind
  // every request admitted and not yet answered, from the batches run so
  // far; nullopt before the first (ServiceTime).
  std::optional<absl::Duration> EstimateCompletion(int items) const;

  // Stops accepting requests; queued ones still run.
  void Shutdown();

 private:
  // Requests reach the queue only through a ticket, which settles the
  // batcher's expectation whatever happens to the request.
  friend class RequestTicket;

  explicit ServedModel(Options options);
  // Expires stuck batches until `stop_watchdog_` or no instance is left.
  void WatchInstances();
  // See DynamicBatcher::Expect, Unexpect and Enqueue.
  void Expect() { batcher_.Expect(); }
  void Unexpect() { batcher_.Unexpect(); }
  absl::Status Enqueue(std::vector<std::unique_ptr<InferenceRequest>>& items);

  const Options options_;
  PreprocessOptions preprocess_;
  Metrics::ModelMetrics metrics_;
  int64_t parameter_count_ = 0;
  std::atomic<int> inflight_{0};
  ServiceTime service_time_;
  mutable ModelStatistics statistics_;
  DynamicBatcher batcher_;  // Outlives the instances (declared first).
  std::vector<std::unique_ptr<ModelInstance>> instances_;
  absl::Notification stop_watchdog_;
  std::thread watchdog_;
};

// Devices for a config's instance groups, one entry per instance: AUTO means
// every CUDA device when LibTorch has CUDA, else the CPU.
absl::StatusOr<std::vector<std::string>> InstanceDevices(
    const v1::ModelConfig& config, int cuda_device_count);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_SERVED_MODEL_H_
