#include "server/core/model_instance.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace segserve {

ModelInstance::ModelInstance(std::unique_ptr<SegmentationModel> model,
                             DynamicBatcher* batcher, Clock* clock,
                             Metrics::ModelMetrics metrics,
                             ServiceTime* service_time)
    : model_(std::move(model)),
      batcher_(batcher),
      clock_(clock),
      metrics_(metrics),
      service_time_(service_time),
      thread_([this] { RunLoop(); }) {}

ModelInstance::~ModelInstance() {
  batcher_->Shutdown();
  thread_.join();
}

void ModelInstance::RunLoop() {
  while (true) {
    std::vector<std::unique_ptr<InferenceRequest>> batch =
        batcher_->NextBatch();
    if (batch.empty()) return;  // Shut down and drained.

    const absl::Time start = clock_->Now();
    std::vector<const float*> inputs;
    inputs.reserve(batch.size());
    OutputKinds kinds;
    for (const auto& request : batch) {
      inputs.push_back(request->input.data());
      kinds.confidence |= request->outputs.confidence;
      kinds.logits |= request->outputs.logits;
    }
    absl::StatusOr<std::vector<InferenceOutput>> outputs;
    try {
      outputs = model_->Infer(inputs, kinds);
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
    if (outputs.ok())
      service_time_->RecordBatch(int(batch.size()), inference_time);

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
