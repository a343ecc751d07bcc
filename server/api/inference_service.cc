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
#include "server/api/call_context.h"
#include "server/api/infer_request.h"
#include "server/api/oip_extensions.h"
#include "server/api/oip_model_config.h"
#include "server/api/status_mapping.h"

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

}  // namespace

// ModelInfer: the request's images are one request of the service layer,
// answered when the last is back.
class InferenceService::InferReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit InferReactor(OpenCalls* calls)
      : hold_(calls), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}
  void OnCancel() override { cancelled_->store(true); }
  void OnDone() override { delete this; }

  void Start(ServingApi* api, grpc::CallbackServerContext* context,
             const inference::ModelInferRequest* request,
             inference::ModelInferResponse* response) {
    // Checked before the request is read: a caller without the right
    // learns nothing of what is wrong with it.
    absl::StatusOr<InferenceGrant> grant =
        api->AuthorizeInference(ToCallContext(*context, cancelled_));
    if (!grant.ok()) {
      Finish(ToGrpcStatus(grant.status()));
      return;
    }
    if (absl::Status s = ToInferCall(*request, &call_); !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    api->Infer(*grant, std::move(call_.job),
               [this, request,
                response](absl::StatusOr<std::vector<SegmentResult>> results) {
                 absl::Status status = results.status();
                 if (status.ok()) {
                   status = FillInferResponse(*request, call_,
                                              *std::move(results), response);
                 }
                 Finish(ToGrpcStatus(status));
               });
  }

 private:
  const OpenCalls::Hold hold_;
  const CancelFlag cancelled_;
  InferCall call_;  // Its pixels outlive the job's views.
};

// A load or unload: answered from the model-control thread.
class InferenceService::ControlReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit ControlReactor(OpenCalls* calls) : hold_(calls) {}
  void OnDone() override { delete this; }

 private:
  const OpenCalls::Hold hold_;
};

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(api_->Ready());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  absl::StatusOr<bool> ready = api_->ModelReady(
      ToCallContext(*context), request->name(), request->version());
  if (ready.ok()) response->set_ready(*ready);
  return Answer(context, ready.status());
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (absl::Status allowed =
          api_->Authorize(ToCallContext(*context), Right::kMetadata);
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
  absl::StatusOr<ModelStatus> status = api_->DescribeModel(
      ToCallContext(*context), request->name(), request->version());
  if (status.ok()) ToOipModelMetadata(*status, response);
  return Answer(context, status.status());
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context,
    const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  absl::StatusOr<ModelStatus> status = api_->DescribeModel(
      ToCallContext(*context), request->name(), request->version());
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
  auto* reactor = new InferReactor(api_->calls());
  reactor->Start(api_, context, request, response);
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context,
    const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  absl::StatusOr<std::vector<VersionStatistics>> statistics = api_->Statistics(
      ToCallContext(*context), request->name(), request->version());
  if (statistics.ok()) {
    for (const VersionStatistics& each : *statistics) {
      ToOipStatistics(each.model, each.version, each.snapshot,
                      response->add_model_stats());
    }
  }
  return Answer(context, statistics.status());
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context,
    const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  absl::StatusOr<std::vector<ModelStatus>> models =
      api_->ListModels(ToCallContext(*context));
  absl::Status status = models.status();
  if (status.ok()) status = CheckRepositoryName(request->repository_name());
  if (status.ok()) ToRepositoryIndex(*models, request->ready(), response);
  return Answer(context, status);
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  auto* reactor = new ControlReactor(api_->calls());
  absl::StatusOr<std::optional<std::string>> config = ConfigOverride(*request);
  absl::Status allowed = config.status();
  if (allowed.ok()) allowed = CheckRepositoryName(request->repository_name());
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  api_->LoadModel(ToCallContext(*context), request->model_name(),
                  *std::move(config), [reactor](absl::Status status) {
                    reactor->Finish(ToGrpcStatus(status));
                  });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(
    grpc::CallbackServerContext* context,
    const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  auto* reactor = new ControlReactor(api_->calls());
  absl::Status allowed = CheckRepositoryName(request->repository_name());
  if (allowed.ok() && !request->parameters().empty()) {
    allowed = absl::InvalidArgumentError(
        "RepositoryModelUnload takes no parameters (segserve has no "
        "dependent models to unload)");
  }
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  api_->UnloadModel(ToCallContext(*context), request->model_name(),
                    [reactor](absl::Status status) {
                      reactor->Finish(ToGrpcStatus(status));
                    });
  return reactor;
}

}  // namespace segserve
