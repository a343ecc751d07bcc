#ifndef SEGSERVE_SERVER_SERVICE_SERVING_API_H_
#define SEGSERVE_SERVER_SERVICE_SERVING_API_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/inference_core.h"
#include "server/core/model_repository.h"
#include "server/core/model_statistics.h"
#include "server/core/thread_pool.h"
#include "server/pipeline/segment_processor.h"
#include "server/service/call_context.h"
#include "server/service/token_authorizer.h"

namespace segserve {

// One version's statistics, as every frontend reports them.
struct VersionStatistics {
  std::string model;
  int64_t version = 0;
  ModelStatistics::Snapshot snapshot;
};

// Proof that a call may infer, and its context: only
// ServingApi::AuthorizeInference makes one, so a frontend checks the right
// once per call (once per stream), before it reads the request.
class InferenceGrant {
 public:
  const CallContext& context() const { return context_; }

 private:
  friend class ServingApi;
  explicit InferenceGrant(CallContext context) : context_(std::move(context)) {}
  CallContext context_;
};

// The transport-neutral service layer that every frontend calls (gRPC
// segserve.v1, gRPC OIP, HTTP): inference, metadata, readiness, statistics
// and repository control, each checked against the call's rights here, once.
// Frontends only convert their messages to and from these calls, and
// answer the absl::Status they get (one mapping per transport). Readiness
// and liveness stay open for probes. Thread-safe.
class ServingApi {
 public:
  using InferDone = SegmentProcessor::Done;
  using ControlDone = absl::AnyInvocable<void(absl::Status)>;

  // The pointers must outlive the layer. `authorizer` may be null: every
  // call is allowed.
  ServingApi(SegmentProcessor* processor, InferenceCore* core,
             ModelRepository* repository, const TokenAuthorizer* authorizer);
  ~ServingApi();

  // The server takes traffic: models ready and no drain.
  bool Ready() const;
  bool draining() const { return core_->draining(); }

  // What a frontend or transport does when the drain starts (end its open
  // streams, close connections once answered); call before the drain.
  void OnDrain(absl::AnyInvocable<void()> start_draining);
  // Admission refuses new requests (the accepted ones finish), then every
  // OnDrain action runs. Call once.
  void StartDraining();

  // UNAUTHENTICATED or PERMISSION_DENIED unless the call may use `right`.
  absl::Status Authorize(const CallContext& context, Right right) const;

  // UNAUTHENTICATED or PERMISSION_DENIED unless the call holds the
  // inference right; else the grant Infer takes.
  absl::StatusOr<InferenceGrant> AuthorizeInference(CallContext context) const;

  // One request of one or more images, admitted or refused as a whole;
  // the job's deadline and cancellation are the granted call's. `done` runs
  // exactly once (see SegmentProcessor::Process).
  void Infer(const InferenceGrant& grant, SegmentJob job, InferDone done);

  // Every model of the repository.
  absl::StatusOr<std::vector<ModelStatus>> ListModels(
      const CallContext& context) const;
  // Versions are the APIs' strings, empty for none (ParseModelVersion).
  //
  // The model `name` (empty: the default). With a `version`, NOT_FOUND
  // unless it exists (one that exists but is not ready is described).
  absl::StatusOr<ModelStatus> DescribeModel(const CallContext& context,
                                            const std::string& name,
                                            const std::string& version) const;
  // Whether the model (and `version`; empty: any) takes requests now:
  // false for one known but not ready, NOT_FOUND for an unknown one.
  absl::StatusOr<bool> ModelReady(const CallContext& context,
                                  const std::string& name,
                                  const std::string& version) const;
  // The statistics of the ready versions of `name` (empty: every model);
  // with a `version`, that one only (NOT_FOUND when unknown, UNAVAILABLE
  // when not ready).
  absl::StatusOr<std::vector<VersionStatistics>> Statistics(
      const CallContext& context, const std::string& name,
      const std::string& version) const;
  const std::string& default_model() const;

  // Repository control (admin right; refused UNAVAILABLE during the drain):
  // loads (or reloads, with `config_text` in place of config.pbtxt) or
  // unloads a model, one change at a time, off the caller's thread. `done`
  // runs once, with the outcome.
  void LoadModel(const CallContext& context, const std::string& name,
                 std::optional<std::string> config_text, ControlDone done);
  void UnloadModel(const CallContext& context, const std::string& name,
                   ControlDone done);

  // Every frontend counts its open calls here, so that the drain waits for
  // the last answer of each.
  OpenCalls* calls() { return &calls_; }
  bool WaitForCallsDone(absl::Time deadline) const {
    return calls_.WaitForNone(deadline);
  }
  // Finishes the loads and unloads under way, then joins their thread; call
  // once the frontends have stopped, before the repository goes.
  void StopModelControl() { control_thread_.reset(); }

 private:
  void ChangeModels(const CallContext& context,
                    absl::AnyInvocable<absl::Status()> change,
                    ControlDone done);

  SegmentProcessor* const processor_;
  InferenceCore* const core_;
  ModelRepository* const repository_;
  const TokenAuthorizer* const authorizer_;
  OpenCalls calls_;
  std::vector<absl::AnyInvocable<void()>> on_drain_;
  // Loads take as long as a model's weights and warm-up: one at a time, on
  // a thread of their own.
  std::unique_ptr<ThreadPool> control_thread_ = std::make_unique<ThreadPool>(1);
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_SERVICE_SERVING_API_H_
