#ifndef SEGSERVE_SERVER_API_SEGMENTATION_SERVICE_H_
#define SEGSERVE_SERVER_API_SEGMENTATION_SERVICE_H_

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/api/token_authorizer.h"
#include "server/core/inference_core.h"
#include "server/core/model_repository.h"
#include "server/pipeline/segment_processor.h"

namespace segserve {

// The gRPC Segmentation service (callback API). The only place that converts
// between the API's protos and the project's own types. Reactors never block:
// work goes to the SegmentProcessor and the reactor finishes from its
// callback. Thread-safe.
class SegmentationService final : public v1::Segmentation::CallbackService {
 public:
  // The pointers must outlive the service. A stream reads no further frame
  // while `max_frames_in_flight` of its frames are being processed or wait
  // for the client to read their answers, so a client that sends without
  // reading holds a bounded amount of server memory.
  // `authorizer` (may be null: every call is allowed) checks each call's
  // bearer token: inference for Segment and SegmentStream, metadata for
  // ListModels and GetModel.
  SegmentationService(SegmentProcessor* processor, const InferenceCore* core,
                      int max_frames_in_flight,
                      const TokenAuthorizer* authorizer = nullptr);

  // Call after InferenceCore::StartDraining. From then on frames that
  // arrive on open streams end their stream with UNAVAILABLE (the frames
  // before them are answered), so that the client reconnects to another
  // replica; new unary calls are refused UNAVAILABLE by the core. Streams
  // with nothing in flight end at once with UNAVAILABLE (an idle stream
  // would otherwise hold the drain until its timeout).
  void DrainStreams();
  // Waits until every Segment call and stream has ended (gRPC has taken its
  // last answer and status: OnDone ran), or `deadline` passes; returns
  // whether all ended. After the drain began, calls end as soon as they
  // start, so the wait ends even while clients keep sending.
  bool WaitForCallsDone(absl::Time deadline);

  grpc::ServerUnaryReactor* Segment(grpc::CallbackServerContext* context,
                                    const v1::SegmentRequest* request,
                                    v1::SegmentResponse* response) override;
  grpc::ServerBidiReactor<v1::SegmentRequest, v1::SegmentResponse>*
  SegmentStream(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const v1::ListModelsRequest* request,
      v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const v1::GetModelRequest* request,
                                     v1::ModelInfo* response) override;

 private:
  class SegmentReactor;
  class StreamReactor;

  SegmentProcessor* const processor_;
  const InferenceCore* const core_;
  const ModelRepository& repository_;
  const size_t max_frames_in_flight_;
  const TokenAuthorizer* const authorizer_;

  absl::Status Authorize(const grpc::CallbackServerContext& context,
                         Right right) const;
  // Registers a new stream (drained at once when the drain has begun) and
  // forgets a finished one; counts the unary calls open.
  void AddStream(StreamReactor* stream);
  void RemoveStream(StreamReactor* stream);
  void AddUnaryCall();
  void RemoveUnaryCall();

  absl::Mutex calls_mu_;
  absl::flat_hash_set<StreamReactor*> streams_ ABSL_GUARDED_BY(calls_mu_);
  int unary_calls_ ABSL_GUARDED_BY(calls_mu_) = 0;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_SEGMENTATION_SERVICE_H_
