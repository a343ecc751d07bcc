#include "server/model_instance.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace segserve {

absl::StatusOr<std::unique_ptr<ModelInstance>> ModelInstance::Start(
    ModelFactory make_model, WarmUp warm_up, DynamicBatcher* batcher,
    Clock* clock, Metrics::ModelMetrics metrics) {
  std::unique_ptr<ModelInstance> instance(
      new ModelInstance(batcher, clock, metrics));
  instance->thread_ =
      std::thread([raw = instance.get(), make_model = std::move(make_model),
                   warm_up = std::move(warm_up)]() mutable {
        raw->Run(std::move(make_model), std::move(warm_up));
      });
  absl::MutexLock lock(&instance->mu_);
  instance->mu_.Await(absl::Condition(&instance->started_));
  if (!instance->start_status_.ok()) return instance->start_status_;
  return instance;
}

ModelInstance::ModelInstance(DynamicBatcher* batcher, Clock* clock,
                             Metrics::ModelMetrics metrics)
    : batcher_(batcher), clock_(clock), metrics_(metrics) {}

ModelInstance::~ModelInstance() {
  bool serving;
  {
    absl::MutexLock lock(&mu_);
    serving = start_status_.ok();
  }
  if (serving) batcher_->Shutdown();
  thread_.join();
}

void ModelInstance::Run(ModelFactory make_model, WarmUp warm_up) {
  absl::Status status;
  try {
    absl::StatusOr<std::unique_ptr<SegmentationModel>> model = make_model();
    if (model.ok()) {
      model_ = *std::move(model);
      status = warm_up(*model_);
    } else {
      status = model.status();
    }
  } catch (const std::exception& e) {
    status = absl::InternalError(
        absl::StrCat("loading the model failed: ", e.what()));
  }
  {
    absl::MutexLock lock(&mu_);
    start_status_ = status;
    started_ = true;
  }
  if (status.ok()) ServeBatches();
}

void ModelInstance::ServeBatches() {
  while (true) {
    std::vector<std::unique_ptr<InferenceRequest>> batch =
        batcher_->NextBatch();
    if (batch.empty()) return;  // Shut down and drained.
    metrics_.queue_depth->Set(batcher_->queue_depth());

    const absl::Time start = clock_->Now();
    std::vector<const float*> inputs;
    inputs.reserve(batch.size());
    bool with_confidence = false;
    for (const auto& request : batch) {
      inputs.push_back(request->input.data());
      with_confidence |= request->with_confidence;
    }
    absl::StatusOr<std::vector<InferenceOutput>> outputs;
    try {
      outputs = model_->Infer(inputs, with_confidence);
    } catch (const std::exception& e) {
      outputs =
          absl::InternalError(absl::StrCat("the model failed: ", e.what()));
    }
    if (outputs.ok() && outputs->size() != batch.size()) {
      outputs = absl::InternalError(
          absl::StrCat("the model returned ", outputs->size(),
                       " outputs for a batch of ", batch.size()));
    }
    if (!outputs.ok()) {
      SEGSERVE_LOG(Error) << "batch of " << batch.size() << " failed on "
                          << model_->device() << ": " << outputs.status();
    }
    const absl::Duration inference_time = clock_->Now() - start;
    metrics_.inference_seconds->Observe(absl::ToDoubleSeconds(inference_time));
    metrics_.batch_size->Observe(double(batch.size()));

    for (size_t i = 0; i < batch.size(); ++i) {
      InferenceRequest& request = *batch[i];
      BatchResult result;
      result.status = outputs.status();
      if (outputs.ok()) result.output = std::move((*outputs)[i]);
      result.queue_time = start - request.enqueue_time;
      result.inference_time = inference_time;
      result.batch_size = int(batch.size());
      metrics_.queue_seconds->Observe(absl::ToDoubleSeconds(result.queue_time));
      request.done(std::move(result));
    }
  }
}

}  // namespace segserve
