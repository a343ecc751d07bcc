#include "server/core/model_repository.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/client_text.h"
#include "common/log.h"
#include "config/repository_layout.h"
#include "config/version_policy.h"
#include "server/core/model_files.h"
#include "server/core/shutting_down.h"

namespace segserve {
namespace fs = std::filesystem;

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

namespace {

constexpr char kNotLoadedReason[] =
    "not loaded: in the explicit control mode a model loads when a load "
    "request asks for it, or when it is a startup model";

const char* ModeFlag(ModelControlMode mode) {
  switch (mode) {
    case ModelControlMode::kNone:
      return "none";
    case ModelControlMode::kPoll:
      return "poll";
    case ModelControlMode::kExplicit:
      return "explicit";
  }
  return "none";
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(
    Options options) {
  absl::StatusOr<std::vector<std::string>> names = ListModelNames(options.root);
  if (!names.ok()) return names.status();
  // A repository of one model needs no default named: requests that name
  // none go to it (with several, they must name one). Not in the explicit
  // mode, which loads only what it is asked to.
  if (options.default_model.empty() && names->size() == 1 &&
      options.control_mode != ModelControlMode::kExplicit) {
    options.default_model = names->front();
  }
  std::vector<std::string> must_exist = options.startup_models;
  if (!options.default_model.empty()) {
    must_exist.push_back(options.default_model);
  }
  for (const std::string& name : must_exist) {
    if (std::find(names->begin(), names->end(), name) == names->end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name == options.default_model ? "the default model '"
                                                     : "the startup model '",
                       name, "' has no directory in '", options.root,
                       "'; models there: ", absl::StrJoin(*names, ", ")));
    }
  }
  const bool explicit_mode =
      options.control_mode == ModelControlMode::kExplicit;
  std::unique_ptr<ModelRepository> repository(
      new ModelRepository(std::move(options)));
  absl::MutexLock lock(&repository->mu_);
  for (const std::string& name : *names) {
    Entry& entry = repository->models_[name];
    entry.status.name = name;
    const bool at_start =
        !explicit_mode || std::find(must_exist.begin(), must_exist.end(),
                                    name) != must_exist.end();
    entry.status.state =
        at_start ? ModelState::kLoading : ModelState::kUnavailable;
    entry.status.reason = at_start ? "the model is loading" : kNotLoadedReason;
  }
  return repository;
}

void ModelRepository::LoadAll() {
  std::vector<std::string> names;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [name, entry] : models_) {
      if (entry.status.state == ModelState::kLoading) names.push_back(name);
    }
  }
  for (const std::string& name : names) {
    {
      absl::ReaderMutexLock lock(&mu_);
      if (cancel_loading_ || shut_down_) break;
    }
    absl::MutexLock lifecycle(&lifecycle_mu_);
    Reconcile(name, std::nullopt, /*force=*/false).IgnoreError();
  }
  absl::MutexLock lock(&mu_);
  for (auto& [name, entry] : models_) {
    if (entry.status.state == ModelState::kLoading) {
      entry.status.state = ModelState::kUnavailable;
      entry.status.reason = "not loaded: the server began shutting down first";
    }
  }
  loaded_ = true;
}

void ModelRepository::CancelLoading() {
  absl::MutexLock lock(&mu_);
  cancel_loading_ = true;
}

bool ModelRepository::HasHealthyVersion(const Entry& entry) {
  for (const auto& [version, served] : entry.ready) {
    if (served->healthy()) return true;
  }
  return false;
}

bool ModelRepository::IsReady() const {
  absl::ReaderMutexLock lock(&mu_);
  if (!loaded_ || shut_down_) return false;
  auto healthy = [this](const std::string& name) {
    auto it = models_.find(name);
    return it != models_.end() && HasHealthyVersion(it->second);
  };
  if (!options_.default_model.empty()) return healthy(options_.default_model);
  if (options_.control_mode == ModelControlMode::kExplicit) {
    return std::all_of(options_.startup_models.begin(),
                       options_.startup_models.end(), healthy);
  }
  for (const auto& [name, entry] : models_) {
    if (HasHealthyVersion(entry)) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<ServedModel>> ModelRepository::LoadVersion(
    const std::string& name, const v1::ModelConfig& config,
    int64_t version) const {
  const std::string dir = (fs::path(options_.root) / name).string();
  const std::string weights_path = ModelWeightsPath(dir, version);
  if (absl::Status inside = CheckInsideRepository(options_.root, weights_path);
      !inside.ok()) {
    return inside;
  }
  absl::StatusOr<std::vector<std::string>> devices =
      InstanceDevices(config, options_.cuda_device_count);
  if (!devices.ok()) return devices.status();
  std::error_code error;
  if (!fs::is_directory(fs::path(dir) / absl::StrCat(version), error)) {
    return absl::NotFoundError(absl::StrCat(
        "the version policy (", DescribeVersionPolicy(config), ") selects ",
        "version ", version, ", and ", dir, " has no directory ", version));
  }
  ServedModel::Options served_options;
  served_options.config = config;
  served_options.version = absl::StrCat(version);
  served_options.weights_path = weights_path;
  served_options.devices = *devices;
  served_options.loader = options_.loader;
  served_options.clock = options_.clock;
  served_options.metrics = options_.metrics;
  served_options.batch_timeout = options_.batch_timeout;
  return ServedModel::Create(std::move(served_options));
}

void ModelRepository::Retire(Entry& entry, int64_t version,
                             const std::shared_ptr<ServedModel>& copy,
                             bool replaced) {
  // One record per version: an older copy already gone needs none.
  for (auto it = entry.retiring.lower_bound(version);
       it != entry.retiring.end() && it->first == version;) {
    it = it->second.expired() ? entry.retiring.erase(it) : std::next(it);
  }
  entry.retiring.emplace(version, copy);
  if (!replaced) {
    options_.metrics->SetReady(entry.status.name, copy->version(), false);
  }
}

void ModelRepository::RetireAll(Entry& entry, const std::string& reason) {
  for (const auto& [version, copy] : entry.ready) {
    Retire(entry, version, copy, /*replaced=*/false);
  }
  entry.ready.clear();
  entry.status.versions.clear();
  entry.tried_config.clear();
  entry.tried_stamps.clear();
  Summarize(entry);
  entry.status.reason = reason;
}

void ModelRepository::Summarize(Entry& entry) {
  ModelStatus& status = entry.status;
  if (entry.ready.empty()) {
    status.state = ModelState::kUnavailable;
    status.latest_version.clear();
    status.devices.clear();
    status.parameter_count = 0;
    for (auto it = status.versions.rbegin(); it != status.versions.rend();
         ++it) {
      if (!it->reason.empty()) {
        status.reason =
            absl::StrCat("no version loaded; latest error: ", it->reason);
        return;
      }
    }
    status.reason = "no version loaded";
    return;
  }
  status.state = ModelState::kReady;
  status.reason.clear();
  const ServedModel& latest = *entry.ready.rbegin()->second;
  status.latest_version = latest.version();
  status.devices = latest.devices();
  status.parameter_count = latest.parameter_count();
}

absl::Status ModelRepository::KeepAfterError(const std::string& name,
                                             const absl::Status& error) {
  absl::MutexLock lock(&mu_);
  Entry& entry = models_[name];
  entry.status.name = name;
  const std::string message(error.message());
  if (entry.last_error != message) {
    SEGSERVE_LOG(Error) << "model " << name << ": " << message
                        << (entry.ready.empty()
                                ? ""
                                : "; the loaded versions keep serving");
    entry.last_error = message;
  }
  if (!entry.ready.empty()) return absl::OkStatus();
  entry.status.state = ModelState::kUnavailable;
  entry.status.reason = message;
  return absl::UnavailableError(
      absl::StrCat("model '", name, "' is not ready: ", message));
}

absl::Status ModelRepository::Reconcile(
    const std::string& name, const std::optional<std::string>& config_text,
    bool force) {
  ModelFiles files = ReadModelFiles(options_.root, name, config_text);
  if (!files.config.ok()) {
    const absl::Status kept = KeepAfterError(name, files.config.status());
    // Load's caller hears why; the loaded versions serve on either way.
    return force ? files.config.status() : kept;
  }
  const std::string config_key = files.config->SerializeAsString();

  // What to load: new versions, and changed ones (config or weights).
  std::vector<int64_t> to_load;
  const std::vector<int64_t> selected =
      files.versions.ok() ? *files.versions : std::vector<int64_t>();
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return ShuttingDownError();
    Entry& entry = models_[name];
    entry.status.name = name;
    for (int64_t version : selected) {
      auto tried = entry.tried_stamps.find(version);
      if (force || entry.tried_config != config_key ||
          tried == entry.tried_stamps.end() ||
          tried->second != files.weights_stamps[version]) {
        to_load.push_back(version);
      }
    }
    bool retires = false;
    for (const auto& [version, copy] : entry.ready) {
      retires |= std::find(selected.begin(), selected.end(), version) ==
                 selected.end();
    }
    if (to_load.empty() && !retires && files.versions.ok()) {
      return entry.ready.empty() ? absl::UnavailableError(absl::StrCat(
                                       "model '", name,
                                       "' is not ready: ", entry.status.reason))
                                 : absl::OkStatus();
    }
    // Versions being loaded for the first time show LOADING meanwhile.
    for (int64_t version : to_load) {
      if (entry.ready.count(version) > 0) continue;
      auto listed = std::find_if(entry.status.versions.begin(),
                                 entry.status.versions.end(),
                                 [&](const VersionStatus& v) {
                                   return v.version == absl::StrCat(version);
                                 });
      if (listed == entry.status.versions.end()) {
        listed = entry.status.versions.insert(entry.status.versions.end(),
                                              {absl::StrCat(version)});
      }
      listed->state = ModelState::kLoading;
      listed->reason = "the version is loading";
    }
    std::sort(entry.status.versions.begin(), entry.status.versions.end(),
              [](const VersionStatus& a, const VersionStatus& b) {
                return std::stoll(a.version) < std::stoll(b.version);
              });
  }

  std::map<int64_t, absl::StatusOr<std::unique_ptr<ServedModel>>> loaded;
  for (int64_t version : to_load) {
    loaded.emplace(version, LoadVersion(name, *files.config, version));
  }

  absl::MutexLock lock(&mu_);
  if (shut_down_) return ShuttingDownError();  // `loaded` is destroyed here.
  Entry& entry = models_[name];
  if (!files.versions.ok()) {
    const std::string error(files.versions.status().message());
    RetireAll(entry, error);
    if (entry.last_error != error) {  // Once, not at every poll.
      SEGSERVE_LOG(Error) << "model " << name << " is unavailable: " << error;
      entry.last_error = error;
    }
    return absl::UnavailableError(
        absl::StrCat("model '", name, "' is not ready: ", entry.status.reason));
  }
  std::map<int64_t, std::shared_ptr<ServedModel>> ready;
  std::vector<VersionStatus> versions;
  bool config_in_use = false;
  for (int64_t version : selected) {
    VersionStatus status{absl::StrCat(version), ModelState::kReady, ""};
    auto old = entry.ready.find(version);
    auto fresh = loaded.find(version);
    if (fresh != loaded.end() && fresh->second.ok()) {
      ready[version] = Retirer::Share(retirer_, *std::move(fresh->second));
      config_in_use = true;
      if (old != entry.ready.end()) {
        Retire(entry, version, old->second, /*replaced=*/true);
      }
      SEGSERVE_LOG(Info) << "model " << name << " version " << version
                         << " is ready on "
                         << absl::StrJoin(ready[version]->devices(), ",")
                         << " (max_batch_size "
                         << files.config->max_batch_size() << ")";
      options_.metrics->SetReady(name, status.version, true);
    } else if (fresh != loaded.end()) {
      const std::string error(fresh->second.status().message());
      if (old != entry.ready.end()) {
        ready[version] = old->second;
        status.reason = absl::StrCat(
            "a reload failed, and the loaded copy "
            "keeps serving: ",
            error);
        SEGSERVE_LOG(Error) << "model " << name << " version " << version
                            << ": " << status.reason;
      } else {
        status.state = ModelState::kUnavailable;
        status.reason = error;
        SEGSERVE_LOG(Error) << "model " << name << " version " << version
                            << " is unavailable: " << error;
      }
    } else if (old != entry.ready.end()) {
      ready[version] = old->second;
    } else {
      // Unchanged since it failed: keep its reason.
      for (const VersionStatus& known : entry.status.versions) {
        if (known.version == status.version) status = known;
      }
    }
    versions.push_back(std::move(status));
  }
  for (const auto& [version, copy] : entry.ready) {
    if (ready.count(version) == 0) {
      SEGSERVE_LOG(Info) << "model " << name << " version " << version
                         << " is unloading: the version policy ("
                         << DescribeVersionPolicy(*files.config)
                         << ") no longer selects it";
      Retire(entry, version, copy, /*replaced=*/false);
    }
  }
  entry.ready = std::move(ready);
  entry.status.versions = std::move(versions);
  if (config_in_use || !entry.status.has_config) {
    entry.status.has_config = true;
    entry.status.config = *files.config;
  }
  entry.tried_config = config_key;
  entry.tried_stamps = files.weights_stamps;
  entry.last_error.clear();
  Summarize(entry);
  if (entry.ready.empty()) {
    return absl::UnavailableError(
        absl::StrCat("model '", name, "' is not ready: ", entry.status.reason));
  }
  return absl::OkStatus();
}

absl::Status ModelRepository::CheckExplicitMode(const char* action) const {
  if (options_.control_mode == ModelControlMode::kExplicit) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      action, " is not allowed: the server's model control mode is ",
      ModeFlag(options_.control_mode),
      options_.control_mode == ModelControlMode::kPoll
          ? ", which follows the files in the repository (change them "
            "instead)"
          : ", which never changes the models it serves",
      "; the explicit mode allows it"));
}

absl::Status ModelRepository::Load(
    const std::string& name, const std::optional<std::string>& config_text) {
  if (absl::Status allowed = CheckExplicitMode("loading a model");
      !allowed.ok()) {
    return allowed;
  }
  if (absl::Status known = CheckModelName(options_.root, name); !known.ok()) {
    return known;
  }
  absl::MutexLock lifecycle(&lifecycle_mu_);
  return Reconcile(name, config_text, /*force=*/true);
}

absl::Status ModelRepository::Unload(const std::string& name) {
  if (absl::Status allowed = CheckExplicitMode("unloading a model");
      !allowed.ok()) {
    return allowed;
  }
  absl::MutexLock lifecycle(&lifecycle_mu_);
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound(name);
  SEGSERVE_LOG(Info) << "model " << name << " is unloading";
  RetireAll(it->second, "unloaded on request");
  return absl::OkStatus();
}

void ModelRepository::Poll() {
  if (options_.control_mode != ModelControlMode::kPoll) return;
  absl::MutexLock lifecycle(&lifecycle_mu_);
  absl::StatusOr<std::vector<std::string>> names =
      ListModelNames(options_.root);
  if (!names.ok()) {
    SEGSERVE_LOG(Error) << "polling the repository: " << names.status();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    for (auto it = models_.begin(); it != models_.end();) {
      if (std::binary_search(names->begin(), names->end(), it->first)) {
        ++it;
        continue;
      }
      SEGSERVE_LOG(Info) << "model " << it->first
                         << " left the repository; unloading it";
      RetireAll(it->second, "removed from the repository");
      it = models_.erase(it);
    }
  }
  for (const std::string& name : *names) {
    Reconcile(name, std::nullopt, /*force=*/false).IgnoreError();
  }
}

const ModelRepository::Entry* ModelRepository::FindEntry(
    const std::string& name) const {
  auto it = models_.find(name.empty() ? options_.default_model : name);
  return it == models_.end() ? nullptr : &it->second;
}

absl::Status ModelRepository::NotFound(const std::string& name) const {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        "the request names no model and the server has no default model; "
        "name one (the model list names them)");
  }
  // A repository of thousands of models lists a few, and how many there are.
  constexpr size_t kListed = 20;
  std::vector<std::string> names;
  for (const auto& [model, entry] : models_) {
    if (names.size() == kListed) break;
    names.push_back(model);
  }
  std::string listed = absl::StrJoin(names, ", ");
  if (models_.size() > kListed) {
    absl::StrAppend(&listed, " and ", models_.size() - kListed, " more");
  }
  return absl::NotFoundError(absl::StrCat(
      "unknown model ", QuoteClientText(name), "; models: ", listed));
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelRepository::Find(
    const std::string& name, const std::string& version) const {
  absl::ReaderMutexLock lock(&mu_);
  const Entry* entry = FindEntry(name);
  if (entry == nullptr) return NotFound(name);
  const ModelStatus& status = entry->status;
  if (shut_down_) {
    return ShuttingDownError();
  }
  if (version.empty()) {
    if (entry->ready.empty()) {
      return absl::UnavailableError(absl::StrCat(
          "model '", status.name, "' is not ready: ", status.reason));
    }
    return entry->ready.rbegin()->second;
  }
  int64_t number = 0;
  if (!absl::SimpleAtoi(version, &number) || number <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_version ", QuoteClientText(version),
                     " is not a version number; give a positive integer or "
                     "leave it empty for the latest ready version"));
  }
  auto ready = entry->ready.find(number);
  if (ready != entry->ready.end()) return ready->second;
  std::vector<std::string> known;
  for (const VersionStatus& v : CurrentStatus(*entry).versions) {
    if (v.version == absl::StrCat(number)) {
      return absl::UnavailableError(absl::StrCat("model '", status.name,
                                                 "' version ", number,
                                                 " is not ready: ", v.reason));
    }
    known.push_back(v.version);
  }
  return absl::NotFoundError(
      absl::StrCat("model '", status.name, "' has no version ", number,
                   "; versions: ", absl::StrJoin(known, ", ")));
}

absl::StatusOr<ModelStatus> ModelRepository::Describe(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  const Entry* entry = FindEntry(name);
  if (entry == nullptr) return NotFound(name);
  return CurrentStatus(*entry);
}

std::vector<ModelStatus> ModelRepository::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ModelStatus> statuses;
  for (const auto& [name, entry] : models_) {
    statuses.push_back(CurrentStatus(entry));
  }
  return statuses;
}

ModelStatus ModelRepository::CurrentStatus(const Entry& entry) {
  ModelStatus status = entry.status;
  // Whether some copy of each retiring version is still alive.
  std::map<int64_t, bool> retiring;
  for (const auto& [version, copy] : entry.retiring) {
    retiring[version] |= !copy.expired();
  }
  for (const auto& [version, alive] : retiring) {
    const std::string number = absl::StrCat(version);
    // A version still selected: its new copy, or its loading, tells.
    if (std::any_of(
            status.versions.begin(), status.versions.end(),
            [&](const VersionStatus& v) { return v.version == number; })) {
      continue;
    }
    status.versions.push_back(
        {number, alive ? ModelState::kUnloading : ModelState::kUnavailable,
         alive ? "unloading: answering the requests admitted to it"
               : "unloaded"});
  }
  std::sort(status.versions.begin(), status.versions.end(),
            [](const VersionStatus& a, const VersionStatus& b) {
              return std::stoll(a.version) < std::stoll(b.version);
            });
  return status;
}

void ModelRepository::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (auto& [name, entry] : models_) {
    for (auto& [version, served] : entry.ready) {
      served->Shutdown();
      options_.metrics->SetReady(name, served->version(), false);
    }
  }
}

}  // namespace segserve
