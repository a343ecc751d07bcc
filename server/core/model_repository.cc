#include "server/core/model_repository.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/client_text.h"
#include "common/log.h"
#include "config/model_config.h"
#include "config/repository_layout.h"
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

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(
    Options options) {
  std::error_code error;
  fs::directory_iterator it(options.root, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot list the model repository '", options.root,
                     "': ", error.message(),
                     "; pass an existing directory with --model_repository"));
  }
  std::vector<std::string> names;
  for (const auto& entry : it) {
    if (entry.is_directory()) names.push_back(entry.path().filename());
  }
  std::sort(names.begin(), names.end());
  if (!options.default_model.empty() &&
      std::find(names.begin(), names.end(), options.default_model) ==
          names.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the default model '", options.default_model, "' has no directory in '",
        options.root, "'; models there: ", absl::StrJoin(names, ", ")));
  }

  std::unique_ptr<ModelRepository> repository(
      new ModelRepository(std::move(options)));
  absl::MutexLock lock(&repository->mu_);
  for (const std::string& name : names) {
    Entry& entry = repository->models_[name];
    entry.status.name = name;
    entry.status.state = ModelState::kLoading;
    entry.status.reason = "the model is loading";
  }
  return repository;
}

void ModelRepository::LoadAll() {
  std::vector<std::string> names;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [name, entry] : models_) names.push_back(name);
  }
  for (const std::string& name : names) {
    {
      absl::ReaderMutexLock lock(&mu_);
      if (cancel_loading_ || shut_down_) break;
    }
    Entry loaded = LoadModel(name);
    absl::MutexLock lock(&mu_);
    // A drain that began during the load takes no new versions.
    if (shut_down_) {
      for (auto& [version, served] : loaded.ready) {
        served->Shutdown();
        options_.metrics->SetReady(name, served->version(), false);
      }
    }
    models_[name] = std::move(loaded);
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
  if (!options_.default_model.empty()) {
    auto it = models_.find(options_.default_model);
    return it != models_.end() && HasHealthyVersion(it->second);
  }
  for (const auto& [name, entry] : models_) {
    if (HasHealthyVersion(entry)) return true;
  }
  return false;
}

ModelRepository::Entry ModelRepository::LoadModel(
    const std::string& name) const {
  Entry entry;
  ModelStatus& status = entry.status;
  status.name = name;
  const fs::path dir = fs::path(options_.root) / name;

  for (const fs::path& path : {dir, dir / kModelConfigFile}) {
    if (absl::Status inside = CheckInsideRepository(options_.root, path);
        !inside.ok()) {
      status.reason = std::string(inside.message());
      SEGSERVE_LOG(Error) << "model " << name
                          << " is unavailable: " << status.reason;
      return entry;
    }
  }
  absl::StatusOr<v1::ModelConfig> config = LoadModelConfig(dir.string());
  if (!config.ok()) {
    status.reason = std::string(config.status().message());
    SEGSERVE_LOG(Error) << "model " << name
                        << " is unavailable: " << status.reason;
    return entry;
  }
  status.has_config = true;
  status.config = *config;

  absl::StatusOr<std::vector<int64_t>> versions =
      ListModelVersions(dir.string());
  if (!versions.ok()) {
    status.reason = std::string(versions.status().message());
    SEGSERVE_LOG(Error) << "model " << name
                        << " is unavailable: " << status.reason;
    return entry;
  }

  absl::StatusOr<std::vector<std::string>> devices =
      InstanceDevices(*config, options_.cuda_device_count);
  for (int64_t version : *versions) {
    VersionStatus version_status;
    version_status.version = absl::StrCat(version);
    absl::StatusOr<std::unique_ptr<ServedModel>> served =
        absl::UnknownError("unreachable");
    const std::string weights_path = ModelWeightsPath(dir.string(), version);
    const absl::Status inside =
        CheckInsideRepository(options_.root, weights_path);
    if (!devices.ok()) {
      served = devices.status();
    } else if (!inside.ok()) {
      served = inside;
    } else {
      ServedModel::Options served_options;
      served_options.config = *config;
      served_options.version = version_status.version;
      served_options.weights_path = weights_path;
      served_options.devices = *devices;
      served_options.loader = options_.loader;
      served_options.clock = options_.clock;
      served_options.metrics = options_.metrics;
      served_options.batch_timeout = options_.batch_timeout;
      served = ServedModel::Create(std::move(served_options));
    }
    if (served.ok()) {
      version_status.state = ModelState::kReady;
      SEGSERVE_LOG(Info) << "model " << name << " version " << version
                         << " is ready on "
                         << absl::StrJoin((*served)->devices(), ",")
                         << " (max_batch_size " << config->max_batch_size()
                         << ")";
      options_.metrics->SetReady(name, version_status.version, true);
      entry.ready.emplace(version,
                          Retirer::Share(retirer_, *std::move(served)));
    } else {
      version_status.state = ModelState::kUnavailable;
      version_status.reason = std::string(served.status().message());
      SEGSERVE_LOG(Error) << "model " << name << " version " << version
                          << " is unavailable: " << version_status.reason;
    }
    status.versions.push_back(std::move(version_status));
  }
  if (!entry.ready.empty()) {
    status.state = ModelState::kReady;
    const ServedModel& latest = *entry.ready.rbegin()->second;
    status.latest_version = latest.version();
    status.devices = latest.devices();
    status.parameter_count = latest.parameter_count();
  } else {
    status.reason = absl::StrCat("no version loaded; latest error: ",
                                 status.versions.back().reason);
  }
  return entry;
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
        "set SegmentRequest.model (ListModels lists them)");
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
  for (const VersionStatus& v : status.versions) {
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
  return entry->status;
}

std::vector<ModelStatus> ModelRepository::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ModelStatus> statuses;
  for (const auto& [name, entry] : models_) statuses.push_back(entry.status);
  return statuses;
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
