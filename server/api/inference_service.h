#ifndef SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_
#define SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_

#include "grpcpp/grpcpp.h"
#include "inference/open_inference.grpc.pb.h"
#include "server/api/call_context.h"
#include "server/api/token_authorizer.h"
#include "server/core/inference_core.h"
#include "server/pipeline/segment_processor.h"

namespace segserve {

// The Open Inference Protocol's gRPC service (inference.GRPCInferenceService,
// callback API) on the same path as Segment: ModelInfer's images become
// SegmentJobs for the same SegmentProcessor, so batching, deadlines, limits,
// metrics and status codes are the same. Of the extensions, ModelConfig is
// served; ModelStatistics and the repository's answer UNIMPLEMENTED for now.
// Thread-safe.
class InferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // The pointers must outlive the service. `authorizer` (may be null:
  // every call is allowed): ModelInfer needs the inference right, the
  // metadata calls the metadata right; ServerLive and ServerReady stay open
  // for probes.
  InferenceService(SegmentProcessor* processor, const InferenceCore* core,
                   const TokenAuthorizer* authorizer = nullptr);

  // Waits until every ModelInfer call has ended (see OpenCalls).
  bool WaitForCallsDone(absl::Time deadline) {
    return infer_calls_.WaitForNone(deadline);
  }

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

 private:
  class InferReactor;

  // The model `name` (empty: the default) for a metadata call: its token's
  // error, or NOT_FOUND when the model or `version` (empty: any) is unknown.
  absl::StatusOr<ModelStatus> DescribeVersion(
      const grpc::CallbackServerContext& context, const std::string& name,
      const std::string& version) const;

  SegmentProcessor* const processor_;
  const InferenceCore* const core_;
  const ModelRepository& repository_;
  const TokenAuthorizer* const authorizer_;
  OpenCalls infer_calls_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_INFERENCE_SERVICE_H_
