#ifndef SEGSERVE_SERVER_CORE_MODEL_STATUS_H_
#define SEGSERVE_SERVER_CORE_MODEL_STATUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "segserve/v1/model_config.pb.h"

namespace segserve {

// A version's life: LOADING -> READY -> UNLOADING (draining its queue before
// it goes) -> UNAVAILABLE; a failed load goes from LOADING to UNAVAILABLE.
enum class ModelState { kLoading, kReady, kUnloading, kUnavailable };

const char* ModelStateName(ModelState state);

struct VersionStatus {
  int64_t version = 0;
  ModelState state = ModelState::kLoading;
  std::string reason;  // Why the version is unavailable.
};

// What the repository reports about one model: a record, holding no live
// objects, so a caller may keep it while versions come and go.
struct ModelStatus {
  std::string name;
  ModelState state = ModelState::kUnavailable;  // Of the latest ready version.
  std::string reason;
  std::vector<VersionStatus> versions;  // Ascending.
  bool has_config = false;
  v1::ModelConfig config;  // Valid when has_config.
  // The latest ready version (0 when none is ready) and where it runs.
  int64_t latest_version = 0;
  std::vector<std::string> devices;
  int64_t parameter_count = 0;
};

// The entry of `version` in `status`, added (LOADING) when it has none;
// versions stay ascending.
VersionStatus& VersionEntry(ModelStatus& status, int64_t version);

// A model with no ready version: UNAVAILABLE, with the latest version's
// error as the reason.
void SummarizeUnavailable(ModelStatus& status);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_STATUS_H_
