#include "server/core/model_instance.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"

namespace segserve {

struct ModelInstance::State {
  std::unique_ptr<SegmentationModel> model;
  DynamicBatcher* batcher;
  Clock* clock;
  Metrics::ModelMetrics metrics;
  ServiceTime* service_time;
  int index;
  ModelStatistics* statistics;
  std::string device;

  absl::Mutex mu;
  // The batch the model is running, and since when; null between batches.
  std::vector<std::unique_ptr<InferenceRequest>>* running ABSL_GUARDED_BY(mu) =
      nullptr;
  absl::Time running_since ABSL_GUARDED_BY(mu);
  // The watchdog answered the running batch; the instance is out of service.
  bool expired ABSL_GUARDED_BY(mu) = false;
};

ModelInstance::ModelInstance(std::unique_ptr<SegmentationModel> model,
                             DynamicBatcher* batcher, Clock* clock,
                             Metrics::ModelMetrics metrics,
                             ServiceTime* service_time, int index,
                             ModelStatistics* statistics)
    : state_(std::make_shared<State>()) {
  state_->device = model->device();
  state_->model = std::move(model);
  state_->batcher = batcher;
  state_->clock = clock;
  state_->metrics = metrics;
  state_->service_time = service_time;
  state_->index = index;
  state_->statistics = statistics;
  thread_ = std::thread([state = state_] { RunLoop(state); });
}

ModelInstance::~ModelInstance() {
  state_->batcher->Shutdown();
  bool stuck = false;
  {
    absl::MutexLock lock(&state_->mu);
    stuck = state_->expired && state_->running != nullptr;
  }
  if (stuck) {
    // Joining would wait as long as the model hangs: forever, perhaps.
    SEGSERVE_LOG(Error) << "the instance on " << state_->device
                        << " is still stuck in its expired batch; leaving its "
                           "thread behind";
    thread_.detach();
    return;
  }
  thread_.join();
}

bool ModelInstance::healthy() const {
  absl::MutexLock lock(&state_->mu);
  return !state_->expired;
}

bool ModelInstance::ExpireIfStuck(absl::Time now, absl::Duration timeout) {
  absl::MutexLock lock(&state_->mu);
  if (state_->expired || state_->running == nullptr ||
      now - state_->running_since <= timeout) {
    return false;
  }
  state_->expired = true;
  const std::string why = absl::StrCat(
      "the model on ", state_->device, " did not finish a batch within ",
      absl::FormatDuration(timeout),
      "; that instance is out of service, retry (another replica if no "
      "instance is left)");
  SEGSERVE_LOG(Error) << why << " (" << state_->running->size()
                      << " request(s) of the batch answered UNAVAILABLE)";
  // The requests stay with the running batch (the model may still read
  // their inputs); only their answers go now.
  for (auto& request : *state_->running) {
    BatchResult result;
    result.status = absl::UnavailableError(why);
    result.queue_time = state_->running_since - request->enqueue_time;
    result.inference_time = now - state_->running_since;
    result.batch_size = int(state_->running->size());
    request->done(std::move(result));
  }
  return true;
}

void ModelInstance::RunLoop(std::shared_ptr<State> state) {
  while (true) {
    std::vector<std::unique_ptr<InferenceRequest>> batch =
        state->batcher->NextBatch();
    if (batch.empty()) return;  // Shut down and drained.

    const absl::Time start = state->clock->Now();
    std::vector<ModelInput> inputs;
    inputs.reserve(batch.size());
    OutputKinds kinds;
    for (const auto& request : batch) {
      inputs.push_back({request->input.data(), request->region});
      kinds.confidence |= request->outputs.confidence;
      kinds.logits |= request->outputs.logits;
    }
    {
      absl::MutexLock lock(&state->mu);
      state->running = &batch;
      state->running_since = start;
    }
    absl::StatusOr<std::vector<InferenceOutput>> outputs;
    try {
      outputs = state->model->Infer(inputs, kinds);
    } catch (const std::exception& e) {
      outputs =
          absl::InternalError(absl::StrCat("the model failed: ", e.what()));
    }
    {
      absl::MutexLock lock(&state->mu);
      state->running = nullptr;
      if (state->expired) {
        // Answered by the watchdog; the batcher, clock and metrics may be
        // gone by now: touch nothing but the state.
        SEGSERVE_LOG(Warning) << "the expired batch on " << state->device
                              << " returned after all; the instance stays "
                                 "out of service";
        return;
      }
    }
    if (outputs.ok() && outputs->size() != batch.size()) {
      outputs = absl::InternalError(
          absl::StrCat("the model returned ", outputs->size(),
                       " outputs for a batch of ", batch.size()));
    }
    if (!outputs.ok()) {
      SEGSERVE_LOG(Error) << "batch of " << batch.size() << " failed on "
                          << state->device << ": " << outputs.status();
    }
    const absl::Duration inference_time = state->clock->Now() - start;
    const Metrics::ModelMetrics& metrics = state->metrics;
    metrics.inference_seconds->Observe(absl::ToDoubleSeconds(inference_time));
    metrics.batch_size->Observe(double(batch.size()));
    if (outputs.ok()) {
      state->service_time->RecordBatch(state->index, int(batch.size()),
                                       inference_time);
      state->statistics->RecordBatch(int(batch.size()), inference_time,
                                     start + inference_time);
    }

    for (size_t i = 0; i < batch.size(); ++i) {
      InferenceRequest& request = *batch[i];
      BatchResult result;
      result.status = outputs.status();
      if (outputs.ok()) result.output = std::move((*outputs)[i]);
      result.queue_time = start - request.enqueue_time;
      result.inference_time = inference_time;
      result.batch_size = int(batch.size());
      metrics.queue_seconds->Observe(absl::ToDoubleSeconds(result.queue_time));
      request.done(std::move(result));
    }
  }
}

}  // namespace segserve
