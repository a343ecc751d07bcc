#ifndef SEGSERVE_SERVER_SERVICE_CALL_CONTEXT_H_
#define SEGSERVE_SERVER_SERVICE_CALL_CONTEXT_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/inference_request.h"

namespace segserve {

// What every frontend knows of a call, in no transport's types: who calls
// (the credentials as sent, checked by the service layer), until when, and
// whether the client has gone.
struct CallContext {
  // The call's "authorization" header or metadata, e.g. "Bearer <token>";
  // empty when it has none.
  std::string authorization;
  absl::Time deadline = absl::InfiniteFuture();
  CancelFlag cancelled;  // May be null: the call cannot be cancelled.
};

// The calls the frontends have open, so that the drain can wait until each
// has sent its last answer. Thread-safe.
class OpenCalls {
 public:
  // Counts one call for as long as it lives.
  class Hold {
   public:
    explicit Hold(OpenCalls* calls) : calls_(calls) { calls_->Add(); }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() { calls_->Remove(); }

   private:
    OpenCalls* const calls_;
  };

  void Add() {
    absl::MutexLock lock(&mu_);
    ++open_;
  }
  void Remove() {
    absl::MutexLock lock(&mu_);
    --open_;
  }
  int open() const {
    absl::MutexLock lock(&mu_);
    return open_;
  }
  // Waits until none is open or `deadline` passes; returns whether none is.
  // A moment with none open is enough: calls that start during the drain
  // are refused at once.
  bool WaitForNone(absl::Time deadline) const {
    absl::MutexLock lock(&mu_);
    auto none = [this]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return open_ == 0; };
    return mu_.AwaitWithDeadline(absl::Condition(&none), deadline);
  }

 private:
  mutable absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_SERVICE_CALL_CONTEXT_H_
