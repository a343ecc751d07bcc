#include "server/core/model_status.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace segserve {

const char* ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kReady:
      return "READY";
    case ModelState::kUnloading:
      return "UNLOADING";
    case ModelState::kUnavailable:
      return "UNAVAILABLE";
  }
  return "UNAVAILABLE";
}

VersionStatus& VersionEntry(ModelStatus& status, int64_t version) {
  auto at =
      std::lower_bound(status.versions.begin(), status.versions.end(), version,
                       [](const VersionStatus& v, int64_t number) {
                         return v.version < number;
                       });
  if (at == status.versions.end() || at->version != version) {
    at = status.versions.insert(at, VersionStatus{version});
  }
  return *at;
}

void SummarizeUnavailable(ModelStatus& status) {
  status.state = ModelState::kUnavailable;
  status.latest_version = 0;
  status.devices.clear();
  status.parameter_count = 0;
  for (auto it = status.versions.rbegin(); it != status.versions.rend(); ++it) {
    if (!it->reason.empty()) {
      status.reason =
          absl::StrCat("no version loaded; latest error: ", it->reason);
      return;
    }
  }
  status.reason = "no version loaded";
}

}  // namespace segserve
