#ifndef SEGSERVE_SERVER_CORE_SHUTTING_DOWN_H_
#define SEGSERVE_SERVER_CORE_SHUTTING_DOWN_H_

#include "absl/status/status.h"

namespace segserve {

// What every layer answers when it refuses work because the server drains:
// UNAVAILABLE, which clients retry on another replica.
inline absl::Status ShuttingDownError() {
  return absl::UnavailableError(
      "the server is shutting down and accepts no new requests; retry on "
      "another replica");
}

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_SHUTTING_DOWN_H_
