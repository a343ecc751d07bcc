#ifndef SEGSERVE_SERVER_SERVICE_MODEL_VERSION_H_
#define SEGSERVE_SERVER_SERVICE_MODEL_VERSION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segserve {

// A version as every API carries it, a decimal string, to the repository's
// number: empty is 0, the latest ready version. INVALID_ARGUMENT, saying
// what is allowed, for anything but a positive integer.
absl::StatusOr<int64_t> ParseModelVersion(absl::string_view text);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_SERVICE_MODEL_VERSION_H_
