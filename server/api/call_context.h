#ifndef SEGSERVE_SERVER_API_CALL_CONTEXT_H_
#define SEGSERVE_SERVER_API_CALL_CONTEXT_H_

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/api/token_authorizer.h"

namespace segserve {

// The call's deadline; InfiniteFuture when it has none.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context);

// Checks a call's bearer token against `authorizer` (null: every call is
// allowed).
absl::Status AuthorizeCall(const TokenAuthorizer* authorizer,
                           const grpc::CallbackServerContext& context,
                           Right right);

// The calls a frontend has open, so that the drain can wait until gRPC has
// taken the last answer of each (their reactors' OnDone). Thread-safe.
class OpenCalls {
 public:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++open_;
  }
  void Remove() {
    absl::MutexLock lock(&mu_);
    --open_;
  }
  // Waits until none is open or `deadline` passes; returns whether none is.
  // A moment with none open is enough: calls that start during the drain
  // are refused at once.
  bool WaitForNone(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto none = [this]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return open_ == 0; };
    return mu_.AwaitWithDeadline(absl::Condition(&none), deadline);
  }

 private:
  absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_CALL_CONTEXT_H_
