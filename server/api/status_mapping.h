#ifndef SEGSERVE_SERVER_API_STATUS_MAPPING_H_
#define SEGSERVE_SERVER_API_STATUS_MAPPING_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace segserve {

// The one mapping from the project's statuses to gRPC's (the codes share
// their numbering); the message is kept, cut to kMaxStatusMessageBytes.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_STATUS_MAPPING_H_
