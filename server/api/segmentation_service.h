#ifndef SEGSERVE_SERVER_API_SEGMENTATION_SERVICE_H_
#define SEGSERVE_SERVER_API_SEGMENTATION_SERVICE_H_

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "server/service/serving_api.h"

namespace segserve {

// The gRPC Segmentation service (callback API): converts between the API's
// protos and the service layer's calls, nothing more. Reactors never block:
// work goes to the service layer and the reactor finishes from its
// callback. Thread-safe.
class SegmentationService final : public v1::Segmentation::CallbackService {
 public:
  // `api` must outlive the service. A stream reads no further frame while
  // `max_frames_in_flight` of its frames are being processed or wait for
  // the client to read their answers, so a client that sends without
  // reading holds a bounded amount of server memory. Segment and
  // SegmentStream need the inference right, ListModels and GetModel the
  // metadata right. Every call counts in the layer's open calls until gRPC
  // has taken its last answer (OnDone).
  // When the layer's drain starts, frames that arrive on open streams end
  // their stream with UNAVAILABLE (the frames before them are answered),
  // so that the client reconnects to another replica; new unary calls are
  // refused UNAVAILABLE by the core. Streams with nothing in flight end at
  // once with UNAVAILABLE (an idle stream would otherwise hold the drain
  // until its timeout).
  SegmentationService(ServingApi* api, int max_frames_in_flight);

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

  // Ends the open streams (see the constructor); runs when the drain starts.
  void DrainStreams();

  ServingApi* const api_;
  const size_t max_frames_in_flight_;

  // Registers a new stream (drained at once when the drain has begun) and
  // forgets a finished one.
  void AddStream(StreamReactor* stream);
  void RemoveStream(StreamReactor* stream);

  absl::Mutex streams_mu_;
  absl::flat_hash_set<StreamReactor*> streams_ ABSL_GUARDED_BY(streams_mu_);
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_SEGMENTATION_SERVICE_H_
