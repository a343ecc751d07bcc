#include "server/status_mapping.h"

#include <string>

namespace segserve {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  // absl has no codes beyond gRPC's 0..16; anything else is a bug: INTERNAL.
  const grpc::StatusCode grpc_code = code >= 0 && code <= 16
                                         ? static_cast<grpc::StatusCode>(code)
                                         : grpc::StatusCode::INTERNAL;
  return grpc::Status(grpc_code, std::string(status.message()));
}

}  // namespace segserve
