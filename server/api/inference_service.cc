#include "server/api/inference_service.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "server/api/infer_request.h"
#include "server/api/oip_extensions.h"
#include "server/api/oip_model_config.h"
#include "server/api/status_mapping.h"
#include "server/core/shutting_down.h"

#ifndef SEGSERVE_VERSION
#define SEGSERVE_VERSION "unknown"
#endif

namespace segserve {
namespace {

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

void AddTensor(const std::string& name, const std::string& datatype,
               std::vector<int64_t> shape,
               inference::ModelMetadataResponse* response, bool input = false) {
  auto* tensor = input ? response->add_inputs() : response->add_outputs();
  tensor->set_name(name);
  tensor->set_datatype(datatype);
  for (int64_t dim : shape) tensor->add_shape(dim);
}

}  // namespace

// ModelInfer: the request's images go through the pipeline as one job each,
// at once; the answer is assembled when the last comes back. The first
// failure cancels the others and is the call's status.
class InferenceService::InferReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit InferReactor(InferenceService* service)
      : service_(service),
        cancelled_(std::make_shared<std::atomic<bool>>(false)) {
    service_->infer_calls_.Add();
  }
  void OnCancel() override { cancelled_->store(true); }
  void OnDone() override {
    service_->infer_calls_.Remove();
    delete this;
  }

  void Start(grpc::CallbackServerContext* context,
             const inference::ModelInferRequest* request,
             inference::ModelInferResponse* response) {
    request_ = request;
    response_ = response;
    // The model's limits, when it is there; when it is not, one job goes
    // through the core to be refused there, counted, with Segment's words.
    int max_images = 1;
    auto served = service_->repository_.Find(request->model_name(),
                                             request->model_version());
    if (served.ok()) {
      max_images = std::max(1, int((*served)->config().max_batch_size()));
      num_classes_ = int((*served)->config().num_classes());
    }
    if (absl::Status s = ToInferCall(
            *request,
            served.ok() ? max_images : std::numeric_limits<int>::max(),
            DeadlineOf(*context), cancelled_, &call_);
        !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    if (!served.ok()) call_.jobs.resize(1);
    const size_t jobs = call_.jobs.size();
    {
      absl::MutexLock lock(&mu_);
      results_.resize(jobs);
      // One more than the jobs, held by this loop: a job answered at once
      // must not finish the call (and free this) while the loop runs.
      remaining_ = jobs + 1;
    }
    for (size_t i = 0; i < jobs; ++i) {
      service_->processor_->Process(
          call_.jobs[i], [this, i](absl::StatusOr<SegmentResult> result) {
            Settle(i, std::move(result));
          });
    }
    Settle(jobs, SegmentResult());
  }

 private:
  // Job `index`'s result (index == the job count: the start loop's hold).
  void Settle(size_t index, absl::StatusOr<SegmentResult> result) {
    absl::Status status;
    std::vector<SegmentResult> results;
    {
      absl::MutexLock lock(&mu_);
      if (!result.ok()) {
        if (status_.ok()) status_ = result.status();
        cancelled_->store(true);  // The rest need not run.
      } else if (index < results_.size()) {
        results_[index] = *std::move(result);
      }
      if (--remaining_ > 0) return;
      status = status_;
      results = std::move(results_);
    }
    if (status.ok()) {
      status = FillInferResponse(*request_, call_, num_classes_,
                                 std::move(results), response_);
    }
    Finish(ToGrpcStatus(status));
  }

  InferenceService* const service_;
  const CancelFlag cancelled_;
  const inference::ModelInferRequest* request_ = nullptr;
  inference::ModelInferResponse* response_ = nullptr;
  InferCall call_;
  int num_classes_ = 0;

  absl::Mutex mu_;
  std::vector<SegmentResult> results_ ABSL_GUARDED_BY(mu_);
  size_t remaining_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// A load or unload: answered from the model-control thread.
class InferenceService::ControlReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit ControlReactor(OpenCalls* calls) : calls_(calls) { calls_->Add(); }
  void OnDone() override {
    calls_->Remove();
    delete this;
  }

 private:
  OpenCalls* const calls_;
};

InferenceService::InferenceService(SegmentProcessor* processor,
                                   const InferenceCore* core,
                                   ModelRepository* repository,
                                   const TokenAuthorizer* authorizer)
    : processor_(processor),
      core_(core),
      repository_(*repository),
      model_control_(repository),
      authorizer_(authorizer) {}

absl::StatusOr<ModelStatus> InferenceService::DescribeVersion(
    const grpc::CallbackServerContext& context, const std::string& name,
    const std::string& version) const {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, context, Right::kMetadata);
      !allowed.ok()) {
    return allowed;
  }
  absl::StatusOr<ModelStatus> status = repository_.Describe(name);
  if (!status.ok() || version.empty()) return status;
  // A version that exists but is not ready is described; an unknown one
  // is NOT_FOUND.
  auto served = repository_.Find(status->name, version);
  if (!served.ok() &&
      served.status().code() != absl::StatusCode::kUnavailable) {
    return served.status();
  }
  return status;
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(!core_->draining() && repository_.IsReady());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, Right::kMetadata);
      !allowed.ok()) {
    return Answer(context, allowed);
  }
  auto served = repository_.Find(request->name(), request->version());
  // Known but not ready is an answer, false; unknown is an error.
  if (!served.ok() &&
      served.status().code() != absl::StatusCode::kUnavailable) {
    return Answer(context, served.status());
  }
  response->set_ready(served.ok() && !core_->draining());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, Right::kMetadata);
      !allowed.ok()) {
    return Answer(context, allowed);
  }
  response->set_name("segserve");
  response->set_version(SEGSERVE_VERSION);
  response->add_extensions("model_configuration");
  response->add_extensions("model_repository");
  response->add_extensions("statistics");
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::StatusOr<ModelStatus> status =
      DescribeVersion(*context, request->name(), request->version());
  if (!status.ok()) return Answer(context, status.status());
  response->set_name(status->name);
  for (const VersionStatus& version : status->versions) {
    if (version.state == ModelState::kReady) {
      response->add_versions(version.version);
    }
  }
  if (!status->has_config) return Answer(context, absl::OkStatus());
  const v1::ModelConfig& config = status->config;
  response->set_platform(OipPlatform(config));
  const int64_t classes = int64_t(config.num_classes());
  AddTensor(kImageTensor, "BYTES", {-1}, response, /*input=*/true);
  AddTensor(kMaskTensor, classes > 256 ? "UINT16" : "UINT8", {-1, -1, -1},
            response);
  AddTensor(kConfidenceTensor, "UINT8", {-1, -1, -1}, response);
  AddTensor(kClassPixelsTensor, "INT64", {-1, classes}, response);
  auto& properties = *response->mutable_properties();
  properties["IMAGE.alternative"] = "UINT8 [-1, -1, -1, 3] (RGB pixels)";
  properties["architecture"] = config.architecture();
  properties["class_names"] = absl::StrJoin(config.class_names(), ",");
  properties["max_batch_size"] = absl::StrCat(config.max_batch_size());
  properties["input_size"] =
      absl::StrCat(config.input().width(), "x", config.input().height());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context,
    const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  absl::StatusOr<ModelStatus> status =
      DescribeVersion(*context, request->name(), request->version());
  if (!status.ok()) return Answer(context, status.status());
  if (!status->has_config) {
    return Answer(context, absl::UnavailableError(absl::StrCat(
                               "model '", status->name,
                               "' has no valid config: ", status->reason)));
  }
  *response->mutable_config() = ToOipModelConfig(status->config);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  auto* reactor = new InferReactor(this);
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, Right::kInference);
      !allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  reactor->Start(context, request, response);
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context,
    const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, Right::kMetadata);
      !allowed.ok()) {
    return Answer(context, allowed);
  }
  if (!request->version().empty()) {
    // One version: NOT_FOUND when unknown, UNAVAILABLE when not ready.
    auto served = repository_.Find(request->name(), request->version());
    if (!served.ok()) return Answer(context, served.status());
    ToOipStatistics((*served)->config().name(), (*served)->version(),
                    (*served)->statistics().Read(),
                    response->add_model_stats());
    return Answer(context, absl::OkStatus());
  }
  std::vector<ModelStatus> models;
  if (request->name().empty()) {
    models = repository_.List();
  } else {
    absl::StatusOr<ModelStatus> model = repository_.Describe(request->name());
    if (!model.ok()) return Answer(context, model.status());
    models.push_back(*std::move(model));
  }
  for (const ModelStatus& model : models) {
    for (const VersionStatus& version : model.versions) {
      if (version.state != ModelState::kReady) continue;
      auto served = repository_.Find(model.name, version.version);
      if (!served.ok()) continue;  // Retired since it was listed.
      ToOipStatistics(model.name, version.version,
                      (*served)->statistics().Read(),
                      response->add_model_stats());
    }
  }
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context,
    const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  absl::Status allowed = AuthorizeCall(authorizer_, *context, Right::kMetadata);
  if (allowed.ok()) allowed = CheckRepositoryName(request->repository_name());
  if (!allowed.ok()) return Answer(context, allowed);
  ToRepositoryIndex(repository_.List(), request->ready(), response);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ChangeModels(
    grpc::CallbackServerContext* context, const std::string& repository_name,
    absl::AnyInvocable<absl::Status()> change) {
  auto* reactor = new ControlReactor(&control_calls_);
  absl::Status allowed = AuthorizeCall(authorizer_, *context, Right::kAdmin);
  if (allowed.ok()) allowed = CheckRepositoryName(repository_name);
  if (allowed.ok() && core_->draining()) allowed = ShuttingDownError();
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  control_thread_->Schedule([reactor, change = std::move(change)]() mutable {
    reactor->Finish(ToGrpcStatus(change()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  absl::StatusOr<std::optional<std::string>> config = ConfigOverride(*request);
  if (!config.ok()) return Answer(context, config.status());
  return ChangeModels(
      context, request->repository_name(),
      [this, name = request->model_name(), config = *std::move(config)] {
        return model_control_->Load(name, config);
      });
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  if (!request->parameters().empty()) {
    return Answer(context,
                  absl::InvalidArgumentError(
                      "RepositoryModelUnload takes no parameters (segserve "
                      "has no dependent models to unload)"));
  }
  return ChangeModels(context, request->repository_name(),
                      [this, name = request->model_name()] {
                        return model_control_->Unload(name);
                      });
}

}  // namespace segserve
