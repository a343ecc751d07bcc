#ifndef SEGSERVE_SERVER_API_CALL_CONTEXT_H_
#define SEGSERVE_SERVER_API_CALL_CONTEXT_H_

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/service/call_context.h"

namespace segserve {

// The call's deadline; InfiniteFuture when it has none.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context);

// A gRPC call as the service layer sees it: its "authorization" metadata,
// its deadline and `cancelled` (may be null), which the reactor sets.
CallContext ToCallContext(const grpc::CallbackServerContext& context,
                          CancelFlag cancelled = nullptr);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_CALL_CONTEXT_H_
