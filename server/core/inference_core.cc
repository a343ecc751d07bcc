#include "server/core/inference_core.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/shutting_down.h"

namespace segserve {
namespace {

// Collects the results of one request's items as they come back from the
// instances, in any order, and hands them over once the last is in. The
// first failure abandons the items still queued and becomes every failed
// item's status, so the request reports its cause, not a sibling's drop.
class Gather : public std::enable_shared_from_this<Gather> {
 public:
  Gather(size_t count, ThreadPool* pool, RequestTicket::GatherDone done,
         RequestTicket::ItemDone on_item, CancelFlag abandoned)
      : results_(count),
        remaining_(count),
        pool_(pool),
        on_item_(std::move(on_item)),
        abandoned_(std::move(abandoned)),
        done_(std::move(done)) {}

  // Runs on an instance thread (or the batcher's, for dropped items).
  void Add(size_t index, BatchResult result) {
    if (on_item_ && result.status.ok()) {
      // The item's own work (a tile's blending) happens on the pool too.
      pool_->Schedule([self = shared_from_this(), index,
                       result = std::move(result)]() mutable {
        absl::Status folded = self->on_item_(index, result);
        if (!folded.ok()) result.status = std::move(folded);
        self->Store(index, std::move(result));
      });
      return;
    }
    Store(index, std::move(result));
  }

 private:
  void Store(size_t index, BatchResult result) {
    RequestTicket::GatherDone done;
    std::vector<BatchResult> results;
    {
      absl::MutexLock lock(&mu_);
      if (!result.status.ok() && first_failure_.ok()) {
        first_failure_ = result.status;
        abandoned_->store(true);
      }
      results_[index] = std::move(result);
      if (--remaining_ > 0) return;
      done = std::move(done_);
      results = std::move(results_);
      for (BatchResult& each : results) {
        if (!each.status.ok()) each.status = first_failure_;
      }
    }
    // Everything else happens on the pool: the instance thread goes back to
    // its batches at once (teardown of a version it may release is the
    // Retirer's).
    pool_->Schedule(
        [done = std::move(done), results = std::move(results)]() mutable {
          done(std::move(results));
        });
  }

  absl::Mutex mu_;
  std::vector<BatchResult> results_ ABSL_GUARDED_BY(mu_);
  size_t remaining_ ABSL_GUARDED_BY(mu_);
  absl::Status first_failure_ ABSL_GUARDED_BY(mu_);
  ThreadPool* const pool_;
  const RequestTicket::ItemDone on_item_;
  const CancelFlag abandoned_;
  RequestTicket::GatherDone done_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

RequestTicket::RequestTicket(InferenceCore* core,
                             std::shared_ptr<ServedModel> model,
                             absl::Time received, absl::Time deadline)
    : core_(core),
      model_(std::move(model)),
      received_(received),
      deadline_(deadline) {
  model_->inflight_.fetch_add(1);
  // Settled by Submit, or by the destructor when the request never gets
  // that far.
  model_->Expect();
}

RequestTicket::~RequestTicket() {
  if (!finished_) Finish(absl::StatusCode::kUnknown);
  model_->inflight_.fetch_sub(1);
  core_->RemoveInflight();
}

absl::Status RequestTicket::Submit(
    std::vector<std::unique_ptr<InferenceRequest>> items, GatherDone done,
    ItemDone on_item) {
  expecting_ = false;  // Enqueue settles it, whatever it answers.
  if (items.empty()) {
    model_->Unexpect();
    return absl::InternalError("a request reached the queue with no items");
  }
  auto abandoned = std::make_shared<std::atomic<bool>>(false);
  auto gather =
      std::make_shared<Gather>(items.size(), core_->pool(), std::move(done),
                               std::move(on_item), abandoned);
  for (size_t i = 0; i < items.size(); ++i) {
    items[i]->abandoned = abandoned;
    items[i]->done = [gather, i](BatchResult result) {
      gather->Add(i, std::move(result));
    };
  }
  return model_->Enqueue(items);
}

void RequestTicket::Finish(absl::StatusCode code) {
  if (finished_) return;
  finished_ = true;
  if (expecting_) {
    expecting_ = false;
    model_->Unexpect();
  }
  core_->CountRequest(model_->config().name(), model_->version(), code,
                      received_);
  const absl::Duration total = core_->clock()->Now() - received_;
  if (code == absl::StatusCode::kOk) {
    model_->statistics().RecordSuccess(total, times_);
  } else {
    model_->statistics().RecordFailure(total);
  }
}

InferenceCore::InferenceCore(const ModelRepository* repository,
                             ThreadPool* pool, Metrics* metrics, Clock* clock,
                             Options options)
    : options_(options),
      repository_(repository),
      pool_(pool),
      metrics_(metrics),
      clock_(clock) {}

absl::StatusOr<std::unique_ptr<RequestTicket>> InferenceCore::Admit(
    Admission admission) {
  const absl::Time received = clock_->Now();
  absl::StatusOr<std::shared_ptr<ServedModel>> model =
      repository_->Find(admission.model, admission.version);
  if (!model.ok()) {
    CountRequest(admission.model.empty() ? repository_->default_model()
                                         : admission.model,
                 /*version=*/0, model.status().code(), received);
    return model.status();
  }
  const uint64_t default_timeout_us =
      (*model)->config().dynamic_batching().default_timeout_us();
  absl::Time deadline = admission.deadline;
  if (deadline == absl::InfiniteFuture() && default_timeout_us > 0) {
    deadline = received + absl::Microseconds(default_timeout_us);
  }
  if (options_.deadline_admission && deadline != absl::InfiniteFuture()) {
    const int items =
        admission.count_items ? admission.count_items(**model) : 1;
    const std::optional<absl::Duration> eta =
        (*model)->EstimateCompletion(std::max(1, items));
    const absl::Duration allowed = deadline - received;
    if (eta.has_value() && *eta > allowed) {
      const absl::Status refused = absl::ResourceExhaustedError(absl::StrCat(
          "the request would miss its deadline by about ",
          absl::ToInt64Milliseconds(*eta - allowed), " ms: model '",
          (*model)->config().name(), "' would answer in about ",
          absl::ToInt64Milliseconds(*eta), " ms (", (*model)->inflight(),
          " request(s) ahead) and the deadline allows ",
          std::max<int64_t>(0, absl::ToInt64Milliseconds(allowed)),
          " ms; retry another replica or allow a longer deadline"));
      CountRequest((*model)->config().name(), (*model)->version(),
                   refused.code(), received);
      (*model)->statistics().RecordFailure(clock_->Now() - received);
      return refused;
    }
  }
  if (!TryAddInflight()) {
    CountRequest((*model)->config().name(), (*model)->version(),
                 absl::StatusCode::kUnavailable, received);
    return ShuttingDownError();
  }
  return std::unique_ptr<RequestTicket>(
      new RequestTicket(this, *std::move(model), received, deadline));
}

int InferenceCore::inflight() const {
  absl::MutexLock lock(&mu_);
  return inflight_;
}

bool InferenceCore::WaitForIdle(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return inflight_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

void InferenceCore::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_.store(true);
}

bool InferenceCore::TryAddInflight() {
  {
    absl::MutexLock lock(&mu_);
    if (draining_.load()) return false;
    ++inflight_;
  }
  metrics_->inflight_requests().Increment();
  return true;
}

void InferenceCore::RemoveInflight() {
  metrics_->inflight_requests().Decrement();
  absl::MutexLock lock(&mu_);
  --inflight_;
}

void InferenceCore::CountRequest(const std::string& model, int64_t version,
                                 absl::StatusCode code, absl::Time received) {
  metrics_->CountRequest(model, version == 0 ? "" : absl::StrCat(version),
                         absl::StatusCodeToString(code),
                         clock_->Now() - received);
}

}  // namespace segserve
