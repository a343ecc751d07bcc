#include "server/api/status_mapping.h"

#include <string>

#include "common/client_text.h"

namespace segserve {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::Status keeps only the canonical codes 0..16, numbered as gRPC's.
  const auto grpc_code = static_cast<grpc::StatusCode>(status.code());
  return grpc::Status(grpc_code, BoundStatusMessage(status.message()));
}

}  // namespace segserve
