#include "server/api/call_context.h"

namespace segserve {

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

absl::Status AuthorizeCall(const TokenAuthorizer* authorizer,
                           const grpc::CallbackServerContext& context,
                           Right right) {
  if (authorizer == nullptr) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find("authorization");
  return authorizer->Check(
      it == metadata.end()
          ? absl::string_view()
          : absl::string_view(it->second.data(), it->second.size()),
      right);
}

}  // namespace segserve
