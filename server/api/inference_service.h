#ifndef SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_
#define SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_

#include "grpcpp/grpcpp.h"
#include "inference/open_inference.grpc.pb.h"
#include "server/service/serving_api.h"

namespace segserve {

// The Open Inference Protocol's gRPC service (inference.GRPCInferenceService,
// callback API): converts its messages to and from the service layer's
// calls, so batching, deadlines, limits, rights, metrics and status codes
// are Segment's. A ModelInfer of N images is one request. Extensions:
// ModelConfig, ModelStatistics and the model repository (RepositoryIndex,
// and RepositoryModelLoad/Unload when the repository's control mode is
// explicit). ServerLive and ServerReady stay open for probes. Thread-safe.
class InferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // `api` must outlive the service.
  explicit InferenceService(ServingApi* api) : api_(api) {}

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

  ServingApi* const api_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_
