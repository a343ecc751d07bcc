#include "server/api/call_context.h"

#include <utility>

namespace segserve {

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

CallContext ToCallContext(const grpc::CallbackServerContext& context,
                          CancelFlag cancelled) {
  CallContext call;
  const auto& metadata = context.client_metadata();
  if (const auto it = metadata.find("authorization"); it != metadata.end()) {
    call.authorization.assign(it->second.data(), it->second.size());
  }
  call.deadline = DeadlineOf(context);
  call.cancelled = std::move(cancelled);
  return call;
}

}  // namespace segserve
