#include "server/core/served_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "config/model_config.h"

namespace segserve {
namespace {

DynamicBatcher::Options ToBatcherOptions(const v1::ModelConfig& config,
                                         prometheus::Gauge* queue_depth) {
  const auto& batching = config.dynamic_batching();
  DynamicBatcher::Options options;
  options.max_batch_size = int(config.max_batch_size());
  options.preferred_batch_sizes.assign(batching.preferred_batch_size().begin(),
                                       batching.preferred_batch_size().end());
  options.max_queue_delay = absl::Microseconds(batching.max_queue_delay_us());
  options.max_queue_size = int(batching.max_queue_size());
  options.priority_levels = int(batching.priority_levels());
  options.eager_dispatch = batching.eager_dispatch();
  options.on_depth_change = [queue_depth](int delta) {
    if (delta > 0) {
      queue_depth->Increment(delta);
    } else {
      queue_depth->Decrement(-delta);
    }
  };
  return options;
}

// Runs the config's warm-up rounds before the instance takes requests, so
// that first-call costs (allocator growth, kernel selection) stay out of
// request latency. Each round runs one batch of every size the batcher can
// form: LibTorch keeps a working set per input shape, so warming only the
// largest batch leaves the server's memory growing whenever traffic first
// forms a new size (measured: +440 MiB on the default model after warming
// only batches of 8).
absl::Status WarmUp(SegmentationModel& model, const v1::ModelConfig& config,
                    const std::string& device) {
  const int max_batch = std::max(1, int(config.max_batch_size()));
  const int height = int(config.input().height());
  const int width = int(config.input().width());
  const std::vector<uint8_t> black(3 * size_t(height) * width, 0);
  const ModelInput input{black.data(), {0, 0, width, height}};
  for (uint32_t round = 0; round < config.warmup_batches(); ++round) {
    for (int size = max_batch; size >= 1; --size) {
      const std::vector<ModelInput> batch(size, input);
      auto outputs = model.Infer(batch, {});
      if (!outputs.ok()) {
        return absl::Status(outputs.status().code(),
                            absl::StrCat("warm-up on ", device, " failed: ",
                                         outputs.status().message()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> InstanceDevices(
    const v1::ModelConfig& config, int cuda_device_count) {
  std::vector<std::string> devices;
  for (const auto& group : config.instance_group()) {
    using Kind = v1::ModelConfig::InstanceGroup;
    const bool gpu = group.kind() == Kind::GPU ||
                     (group.kind() == Kind::AUTO && cuda_device_count > 0);
    if (group.kind() == Kind::GPU && cuda_device_count == 0) {
      return absl::FailedPreconditionError(
          "instance_group asks for GPU instances but this LibTorch build "
          "sees no CUDA device; use kind CPU or AUTO");
    }
    if (!gpu) {
      if (config.precision() != v1::ModelConfig::FP32) {
        return absl::FailedPreconditionError(
            "FP16/BF16 need a GPU instance; this instance runs on the CPU "
            "with FP32");
      }
      for (uint32_t i = 0; i < group.count(); ++i) devices.push_back("cpu");
      continue;
    }
    std::vector<int> gpus(group.gpus().begin(), group.gpus().end());
    if (gpus.empty()) {
      for (int i = 0; i < cuda_device_count; ++i) gpus.push_back(i);
    }
    for (int gpu_id : gpus) {
      if (gpu_id >= cuda_device_count) {
        return absl::FailedPreconditionError(
            absl::StrCat("instance_group names GPU ", gpu_id, " but only ",
                         cuda_device_count, " CUDA device(s) exist"));
      }
      for (uint32_t i = 0; i < group.count(); ++i) {
        devices.push_back(absl::StrCat("cuda:", gpu_id));
      }
    }
  }
  return devices;
}

ServedModel::ServedModel(Options options)
    : options_(std::move(options)),
      preprocess_(PreprocessOptionsFromConfig(options_.config)),
      metrics_(options_.metrics->ForModel(options_.config.name(),
                                          absl::StrCat(options_.version))),
      service_time_(int(options_.devices.size())),
      batcher_(ToBatcherOptions(options_.config, metrics_.queue_depth),
               options_.clock) {}

ServedModel::~ServedModel() {
  stop_watchdog_.Notify();
  if (watchdog_.joinable()) watchdog_.join();
  Shutdown();
  instances_.clear();  // Joins after the queue drains.
}

absl::StatusOr<std::unique_ptr<ServedModel>> ServedModel::Create(
    Options options) {
  if (options.devices.empty()) {
    return absl::InvalidArgumentError("a model needs at least one instance");
  }
  std::unique_ptr<ServedModel> served(new ServedModel(std::move(options)));
  const Options& opts = served->options_;
  for (const std::string& device : opts.devices) {
    absl::StatusOr<std::unique_ptr<SegmentationModel>> model =
        opts.loader(opts.config, opts.weights_path, device);
    if (!model.ok()) return model.status();
    SEGSERVE_RETURN_IF_ERROR(WarmUp(**model, opts.config, device));
    served->parameter_count_ = (*model)->parameter_count();
    served->instances_.push_back(std::make_unique<ModelInstance>(
        *std::move(model), &served->batcher_, opts.clock, served->metrics_,
        &served->service_time_, int(served->instances_.size()),
        &served->statistics_));
  }
  if (opts.batch_timeout > absl::ZeroDuration()) {
    served->watchdog_ =
        std::thread([s = served.get()] { s->WatchInstances(); });
  }
  return served;
}

bool ServedModel::healthy() const {
  for (const auto& instance : instances_) {
    if (instance->healthy()) return true;
  }
  return false;
}

void ServedModel::WatchInstances() {
  const absl::Duration timeout = options_.batch_timeout;
  const absl::Duration period =
      std::clamp(timeout / 4, absl::Milliseconds(10), absl::Seconds(1));
  while (!stop_watchdog_.WaitForNotificationWithTimeout(period)) {
    for (const auto& instance : instances_) {
      instance->ExpireIfStuck(options_.clock->Now(), timeout);
    }
    if (healthy()) continue;
    const absl::Status none = absl::UnavailableError(absl::StrCat(
        "model '", options_.config.name(), "' version ", options_.version,
        " has no instance left that finishes its batches within ",
        absl::FormatDuration(timeout), "; retry on another replica"));
    SEGSERVE_LOG(Error) << none.message();
    batcher_.Close(none);
    return;
  }
}

absl::Status ServedModel::Enqueue(
    std::vector<std::unique_ptr<InferenceRequest>>& items) {
  return batcher_.Enqueue(items);
}

void ServedModel::Shutdown() { batcher_.Shutdown(); }

std::optional<absl::Duration> ServedModel::EstimateCompletion(int items) const {
  // Everything admitted counts, not only the queue: under overload requests
  // wait for the pool to decode them before they reach the queue.
  return service_time_.EstimateCompletion(inflight_.load() + items - 1);
}

}  // namespace segserve
