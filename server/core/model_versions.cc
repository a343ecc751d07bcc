#include "server/core/model_versions.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "config/version_policy.h"

namespace segserve {

ModelVersions::ModelVersions(std::string name, std::shared_ptr<Retirer> retirer,
                             Metrics* metrics)
    : retirer_(std::move(retirer)), metrics_(metrics) {
  status_.name = std::move(name);
}

void ModelVersions::SetPending(ModelState state, std::string reason) {
  status_.state = state;
  status_.reason = std::move(reason);
}

std::vector<int64_t> ModelVersions::StartChange(const ModelFiles& files,
                                                bool force) {
  std::vector<int64_t> to_load;
  if (!files.config.ok() || !files.versions.ok()) return to_load;
  const std::string config_key = files.config->SerializeAsString();
  for (int64_t version : *files.versions) {
    auto tried = tried_stamps_.find(version);
    auto stamp = files.weights_stamps.find(version);
    if (force || tried_config_ != config_key || tried == tried_stamps_.end() ||
        stamp == files.weights_stamps.end() || tried->second != stamp->second) {
      to_load.push_back(version);
    }
  }
  // Versions loaded for the first time show LOADING meanwhile.
  for (int64_t version : to_load) {
    if (ready_.count(version) > 0) continue;
    VersionStatus& listed = VersionEntry(status_, version);
    listed.state = ModelState::kLoading;
    listed.reason = "the version is loading";
  }
  return to_load;
}

bool ModelVersions::Unchanged(const ModelFiles& files,
                              const std::vector<int64_t>& to_load) const {
  if (!files.versions.ok() || !to_load.empty()) return false;
  for (const auto& [version, copy] : ready_) {
    if (!std::binary_search(files.versions->begin(), files.versions->end(),
                            version)) {
      return false;
    }
  }
  return true;
}

void ModelVersions::FinishChange(const ModelFiles& files, LoadedCopies loaded) {
  const std::string& name = status_.name;
  if (!files.versions.ok()) {
    const std::string error(files.versions.status().message());
    RetireAll(error);
    LogOnce(error, absl::StrCat("model ", name, " is unavailable: ", error));
    return;
  }
  std::map<int64_t, std::shared_ptr<ServedModel>> ready;
  std::vector<VersionStatus> versions;
  bool config_in_use = false;
  for (int64_t version : *files.versions) {
    VersionStatus status{version, ModelState::kReady, ""};
    auto old = ready_.find(version);
    auto fresh = loaded.find(version);
    if (fresh != loaded.end() && fresh->second.ok()) {
      ready[version] = Retirer::Share(retirer_, *std::move(fresh->second));
      config_in_use = true;
      if (old != ready_.end()) Retire(version, old->second, /*replaced=*/true);
      SEGSERVE_LOG(Info) << "model " << name << " version " << version
                         << " is ready on "
                         << absl::StrJoin(ready[version]->devices(), ",")
                         << " (max_batch_size "
                         << files.config->max_batch_size() << ")";
      metrics_->SetReady(name, absl::StrCat(version), true);
    } else if (fresh != loaded.end()) {
      const std::string error(fresh->second.status().message());
      if (old != ready_.end()) {
        ready[version] = old->second;
        status.reason = absl::StrCat(
            "a reload failed, and the loaded copy keeps serving: ", error);
        SEGSERVE_LOG(Error) << "model " << name << " version " << version
                            << ": " << status.reason;
      } else {
        status.state = ModelState::kUnavailable;
        status.reason = error;
        SEGSERVE_LOG(Error) << "model " << name << " version " << version
                            << " is unavailable: " << error;
      }
    } else if (old != ready_.end()) {
      ready[version] = old->second;
    } else {
      // Unchanged since it failed: keep its reason.
      for (const VersionStatus& known : status_.versions) {
        if (known.version == version) status = known;
      }
    }
    versions.push_back(std::move(status));
  }
  for (const auto& [version, copy] : ready_) {
    if (ready.count(version) > 0) continue;
    SEGSERVE_LOG(Info) << "model " << name << " version " << version
                       << " is unloading: the version policy ("
                       << DescribeVersionPolicy(*files.config)
                       << ") no longer selects it";
    Retire(version, copy, /*replaced=*/false);
  }
  ready_ = std::move(ready);
  status_.versions = std::move(versions);
  if (config_in_use || !status_.has_config) {
    status_.has_config = true;
    status_.config = *files.config;
  }
  tried_config_ = files.config->SerializeAsString();
  tried_stamps_ = files.weights_stamps;
  last_error_.clear();
  Summarize();
}

absl::Status ModelVersions::KeepAfterError(const absl::Status& error) {
  const std::string message(error.message());
  LogOnce(
      message,
      absl::StrCat("model ", status_.name, ": ", message,
                   ready_.empty() ? "" : "; the loaded versions keep serving"));
  if (!ready_.empty()) return absl::OkStatus();
  status_.state = ModelState::kUnavailable;
  status_.reason = message;
  return ReadyOrWhyNot();
}

void ModelVersions::RetireAll(const std::string& reason) {
  for (const auto& [version, copy] : ready_) {
    Retire(version, copy, /*replaced=*/false);
  }
  ready_.clear();
  status_.versions.clear();
  tried_config_.clear();
  tried_stamps_.clear();
  Summarize();
  status_.reason = reason;
}

void ModelVersions::Shutdown() {
  for (const auto& [version, copy] : ready_) {
    copy->Shutdown();
    metrics_->SetReady(status_.name, absl::StrCat(version), false);
  }
}

absl::Status ModelVersions::ReadyOrWhyNot() const {
  if (!ready_.empty()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "model '", status_.name, "' is not ready: ", status_.reason));
}

bool ModelVersions::Healthy() const {
  return std::any_of(ready_.begin(), ready_.end(),
                     [](const auto& each) { return each.second->healthy(); });
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelVersions::Find(
    int64_t version) const {
  if (version == 0) {
    if (ready_.empty()) return ReadyOrWhyNot();
    return ready_.rbegin()->second;
  }
  auto ready = ready_.find(version);
  if (ready != ready_.end()) return ready->second;
  std::vector<int64_t> known;
  for (const VersionStatus& v : Status().versions) {
    if (v.version == version) {
      return absl::UnavailableError(absl::StrCat("model '", status_.name,
                                                 "' version ", version,
                                                 " is not ready: ", v.reason));
    }
    known.push_back(v.version);
  }
  return absl::NotFoundError(
      absl::StrCat("model '", status_.name, "' has no version ", version,
                   "; versions: ", absl::StrJoin(known, ", ")));
}

ModelStatus ModelVersions::Status() const {
  ModelStatus status = status_;
  // Whether some copy of each retiring version is still alive.
  std::map<int64_t, bool> retiring;
  for (const auto& [version, copy] : retiring_) {
    retiring[version] |= !copy.expired();
  }
  for (const auto& [version, alive] : retiring) {
    // A version still selected: its new copy, or its loading, tells.
    if (std::any_of(
            status.versions.begin(), status.versions.end(),
            [&](const VersionStatus& v) { return v.version == version; })) {
      continue;
    }
    VersionStatus& entry = VersionEntry(status, version);
    entry.state = alive ? ModelState::kUnloading : ModelState::kUnavailable;
    entry.reason =
        alive ? "unloading: answering the requests admitted to it" : "unloaded";
  }
  return status;
}

void ModelVersions::Retire(int64_t version,
                           const std::shared_ptr<ServedModel>& copy,
                           bool replaced) {
  // One record per version: an older copy already gone needs none.
  for (auto it = retiring_.lower_bound(version);
       it != retiring_.end() && it->first == version;) {
    it = it->second.expired() ? retiring_.erase(it) : std::next(it);
  }
  retiring_.emplace(version, copy);
  if (!replaced) metrics_->SetReady(status_.name, absl::StrCat(version), false);
}

void ModelVersions::Summarize() {
  if (ready_.empty()) {
    SummarizeUnavailable(status_);
    return;
  }
  status_.state = ModelState::kReady;
  status_.reason.clear();
  const ServedModel& latest = *ready_.rbegin()->second;
  status_.latest_version = latest.version();
  status_.devices = latest.devices();
  status_.parameter_count = latest.parameter_count();
}

void ModelVersions::LogOnce(const std::string& error, const std::string& line) {
  if (last_error_ == error) return;  // Once, not at every poll.
  SEGSERVE_LOG(Error) << line;
  last_error_ = error;
}

}  // namespace segserve
