#ifndef SEGSERVE_SERVER_CORE_INFERENCE_CORE_H_
#define SEGSERVE_SERVER_CORE_INFERENCE_CORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/core/inference_request.h"
#include "server/core/metrics.h"
#include "server/core/model_repository.h"
#include "server/core/served_model.h"
#include "server/core/thread_pool.h"

namespace segserve {

class InferenceCore;

// What a frontend asks the core to admit, in the project's own types.
struct Admission {
  std::string model;    // Empty: the default model.
  int64_t version = 0;  // 0: the latest ready version.
  // Infinite: the model's dynamic_batching.default_timeout_us, if it has one.
  absl::Time deadline = absl::InfiniteFuture();
  // The batch items the request will become on the model found (the caller
  // knows its formats: an image is one item, or its tiles), for deadline
  // admission. Called at most once, inside Admit. Null: one item.
  std::function<int(const ServedModel&)> count_items;
};

// One admitted request, from admission until its answer. While it lives the
// request counts as in flight (for the server and for its model version),
// and it keeps that version alive. Finishing or destroying it settles the
// batcher's expectation of a request that never reached the queue (it
// failed while being decoded, say), so an eager batch does not wait for it.
//
// Not thread-safe: one request's steps run one after another.
class RequestTicket {
 public:
  // One result per item, in the order they were submitted. When any item
  // failed, every failed item carries the status of the first failure.
  using GatherDone = absl::AnyInvocable<void(std::vector<BatchResult>)>;
  // Runs on a pool thread for each item that succeeded, as it comes back
  // and before GatherDone, and may take its output (tiles blended as they
  // arrive instead of held); an error fails the item.
  using ItemDone = std::function<absl::Status(size_t index, BatchResult&)>;

  RequestTicket(const RequestTicket&) = delete;
  RequestTicket& operator=(const RequestTicket&) = delete;
  ~RequestTicket();

  const ServedModel& model() const { return *model_; }
  absl::Time received() const { return received_; }
  absl::Time deadline() const { return deadline_; }

  // Queues the request's batch items (one image, or the tiles of one) as a
  // unit: all of them, or none and the reason. Call at most once. `done`
  // runs once, on a pool thread, when every item is back; it must not
  // destroy the ticket's owner from an instance thread, which is why the
  // core hops to the pool. Once one item fails, the others still queued are
  // dropped (CANCELLED) rather than run.
  absl::Status Submit(std::vector<std::unique_ptr<InferenceRequest>> items,
                      GatherDone done, ItemDone on_item = nullptr);

  // Where the request's time went, for its version's statistics when it
  // finishes OK.
  void SetTimes(const RequestTimes& times) { times_ = times; }

  // Records the request's outcome in the request metrics and the version's
  // statistics, and settles the batcher's expectation if Submit never ran.
  // Call once, just before answering the client; the destructor calls it
  // (with UNKNOWN) otherwise.
  void Finish(absl::StatusCode code);

 private:
  friend class InferenceCore;
  RequestTicket(InferenceCore* core, std::shared_ptr<ServedModel> model,
                absl::Time received, absl::Time deadline);

  InferenceCore* const core_;
  const std::shared_ptr<ServedModel> model_;
  const absl::Time received_;
  const absl::Time deadline_;
  RequestTimes times_;
  bool expecting_ = true;  // Until Submit settles the expectation.
  bool finished_ = false;
};

// Admission for every frontend: model and version lookup, deadlines, the
// in-flight count, request metrics, draining, and the hop from a model
// instance's thread back to the pool. Frontends and pipelines own the
// formats; the core owns the requests. Thread-safe.
class InferenceCore {
 public:
  struct Options {
    // Refuse at arrival, RESOURCE_EXHAUSTED, a request whose deadline its
    // model's queue would miss (from the batch times so far): the client
    // can retry another replica at once instead of timing out here, and the
    // server spends nothing on a request that would come too late.
    bool deadline_admission = true;
  };

  // The pointers must outlive the core.
  InferenceCore(const ModelRepository* repository, ThreadPool* pool,
                Metrics* metrics, Clock* clock)
      : InferenceCore(repository, pool, metrics, clock, Options()) {}
  InferenceCore(const ModelRepository* repository, ThreadPool* pool,
                Metrics* metrics, Clock* clock, Options options);

  // Never blocks. A refusal (unknown model or version, one not ready, a
  // deadline the queue would miss) is counted in the request metrics and
  // returned; the caller answers it. During the drain every request is
  // refused UNAVAILABLE. One request is one admission, one ticket and one
  // entry in the metrics and statistics, however many items it has.
  absl::StatusOr<std::unique_ptr<RequestTicket>> Admit(Admission admission);

  // The drain has begun: Admit refuses every new request UNAVAILABLE, and
  // frontends end the calls they hold (streams), so that clients move to
  // other replicas. Requests already admitted finish: once this returns,
  // WaitForIdle covers every request that will ever be admitted.
  void StartDraining();
  bool draining() const { return draining_.load(); }

  // Requests admitted and not yet answered (their tickets live).
  int inflight() const;
  // Waits until no request is in flight or `deadline` passes; returns
  // whether all finished.
  bool WaitForIdle(absl::Time deadline) const;

  ThreadPool* pool() const { return pool_; }
  Clock* clock() const { return clock_; }
  const ModelRepository& repository() const { return *repository_; }

 private:
  friend class RequestTicket;
  // False once the drain has begun (checked under the lock that
  // WaitForIdle waits on, so no admission slips past the drain).
  bool TryAddInflight();
  void RemoveInflight();
  // `version` 0: none was found.
  void CountRequest(const std::string& model, int64_t version,
                    absl::StatusCode code, absl::Time received);

  const Options options_;
  const ModelRepository* const repository_;
  ThreadPool* const pool_;
  Metrics* const metrics_;
  Clock* const clock_;
  std::atomic<bool> draining_{false};

  mutable absl::Mutex mu_;
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_INFERENCE_CORE_H_
