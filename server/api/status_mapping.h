#ifndef SEGSERVE_SERVER_API_STATUS_MAPPING_H_
#define SEGSERVE_SERVER_API_STATUS_MAPPING_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace segserve {

// The one mapping from the project's statuses to gRPC's (the codes share
// their numbering); the message is kept, cut to kMaxStatusMessageBytes.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The one mapping from the project's status codes to HTTP's, as Triton's
// HTTP frontend maps them where it has one: INVALID_ARGUMENT,
// FAILED_PRECONDITION, OUT_OF_RANGE and ALREADY_EXISTS 400,
// UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
// RESOURCE_EXHAUSTED 429 (a full queue: retry later or elsewhere),
// CANCELLED 499, UNIMPLEMENTED 501, UNAVAILABLE 503 (not ready, draining),
// DEADLINE_EXCEEDED 504, the rest (INTERNAL, UNKNOWN, DATA_LOSS) 500.
int ToHttpCode(absl::StatusCode code);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_STATUS_MAPPING_H_
