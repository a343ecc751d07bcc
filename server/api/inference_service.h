#ifndef SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_
#define SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_

#include "grpcpp/grpcpp.h"
#include "inference/open_inference.grpc.pb.h"
#include "server/api/call_context.h"
#include "server/api/token_authorizer.h"
#include "server/core/inference_core.h"
#include "server/core/thread_pool.h"
#include "server/pipeline/segment_processor.h"

namespace segserve {

// The Open Inference Protocol's gRPC service (inference.GRPCInferenceService,
// callback API) on the same path as Segment: ModelInfer's images become
// SegmentJobs for the same SegmentProcessor, so batching, deadlines, limits,
// metrics and status codes are the same. Extensions: ModelConfig,
// ModelStatistics and the model repository (RepositoryIndex, and
// RepositoryModelLoad/Unload when the repository's control mode is
// explicit). Thread-safe.
class InferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // The pointers must outlive the service; `repository` is the core's,
  // which loads and unloads for the repository extension. `authorizer`
  // (may be null: every call is allowed): ModelInfer needs the inference
  // right, RepositoryModelLoad/Unload the admin right, the other calls the
  // metadata right; ServerLive and ServerReady stay open for probes.
  InferenceService(SegmentProcessor* processor, const InferenceCore* core,
                   ModelRepository* repository,
                   const TokenAuthorizer* authorizer = nullptr);

  // Waits until every ModelInfer, load and unload call has ended (see
  // OpenCalls).
  bool WaitForCallsDone(absl::Time deadline) {
    return infer_calls_.WaitForNone(deadline) &&
           control_calls_.WaitForNone(deadline);
  }

  // Finishes the loads and unloads under way, then joins their thread; call
  // once gRPC has stopped, before the repository goes.
  void StopModelControl() { control_thread_.reset(); }

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context,
      const inference::ServerLiveRequest* request,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(
      grpc::CallbackServerContext* context,
      const inference::ModelConfigRequest* request,
      inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(
      grpc::CallbackServerContext* context,
      const inference::ModelStatisticsRequest* request,
      inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(
      grpc::CallbackServerContext* context,
      const inference::RepositoryIndexRequest* request,
      inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context,
      const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context,
      const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

 private:
  class InferReactor;
  class ControlReactor;

  // Runs `change` (a load or an unload) off gRPC's threads, after the
  // admin right, the repository name and the drain are checked.
  grpc::ServerUnaryReactor* ChangeModels(
      grpc::CallbackServerContext* context, const std::string& repository_name,
      absl::AnyInvocable<absl::Status()> change);

  // The model `name` (empty: the default) for a metadata call: its token's
  // error, or NOT_FOUND when the model or `version` (empty: any) is unknown.
  absl::StatusOr<ModelStatus> DescribeVersion(
      const grpc::CallbackServerContext& context, const std::string& name,
      const std::string& version) const;

  SegmentProcessor* const processor_;
  const InferenceCore* const core_;
  const ModelRepository& repository_;
  ModelRepository* const model_control_;
  const TokenAuthorizer* const authorizer_;
  OpenCalls infer_calls_;
  OpenCalls control_calls_;
  // Loads take as long as a model's weights and warm-up: one at a time, on
  // a thread of their own.
  std::unique_ptr<ThreadPool> control_thread_ = std::make_unique<ThreadPool>(1);
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_
