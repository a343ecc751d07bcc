#include "server/core/model_repository.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/client_text.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/core/shutting_down.h"

namespace segserve {
namespace {

constexpr char kNotLoadedReason[] =
    "not loaded: in the explicit control mode a model loads when a load "
    "request asks for it, or when it is a startup model";

const char* ModeName(ModelControlMode mode) {
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

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(
    Options options) {
  SEGSERVE_ASSIGN_OR_RETURN(const std::vector<std::string> names,
                            ModelDirectory(options.root).ListModels());
  // A repository of one model needs no default named: requests that name
  // none go to it (with several, they must name one). Not in the explicit
  // mode, which loads only what it is asked to.
  const bool explicit_mode =
      options.control_mode == ModelControlMode::kExplicit;
  if (options.default_model.empty() && names.size() == 1 && !explicit_mode) {
    options.default_model = names.front();
  }
  std::vector<std::string> at_start = options.startup_models;
  if (!options.default_model.empty()) {
    at_start.push_back(options.default_model);
  }
  for (const std::string& name : at_start) {
    if (Contains(names, name)) continue;
    return absl::InvalidArgumentError(
        absl::StrCat(name == options.default_model ? "the default model '"
                                                   : "the startup model '",
                     name, "' has no directory in '", options.root,
                     "'; models there: ", absl::StrJoin(names, ", ")));
  }
  std::unique_ptr<ModelRepository> repository(
      new ModelRepository(std::move(options)));
  absl::MutexLock lock(&repository->mu_);
  for (const std::string& name : names) {
    if (!explicit_mode || Contains(at_start, name)) {
      repository->Model(name).SetPending(ModelState::kLoading,
                                         "the model is loading");
    } else {
      repository->Model(name).SetPending(ModelState::kUnavailable,
                                         kNotLoadedReason);
    }
  }
  return repository;
}

ModelVersions& ModelRepository::Model(const std::string& name) {
  return models_.try_emplace(name, name, retirer_, options_.metrics)
      .first->second;
}

void ModelRepository::LoadAll() {
  std::vector<std::string> names;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [name, model] : models_) {
      if (model.state() == ModelState::kLoading) names.push_back(name);
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
  for (auto& [name, model] : models_) {
    if (model.state() == ModelState::kLoading) {
      model.SetPending(ModelState::kUnavailable,
                       "not loaded: the server began shutting down first");
    }
  }
  loaded_ = true;
}

void ModelRepository::CancelLoading() {
  absl::MutexLock lock(&mu_);
  cancel_loading_ = true;
}

bool ModelRepository::IsReady() const {
  absl::ReaderMutexLock lock(&mu_);
  if (!loaded_ || shut_down_) return false;
  auto healthy = [this](const std::string& name) {
    auto it = models_.find(name);
    return it != models_.end() && it->second.Healthy();
  };
  if (!options_.default_model.empty()) return healthy(options_.default_model);
  if (options_.control_mode == ModelControlMode::kExplicit) {
    return std::all_of(options_.startup_models.begin(),
                       options_.startup_models.end(), healthy);
  }
  return std::any_of(models_.begin(), models_.end(),
                     [](const auto& each) { return each.second.Healthy(); });
}

absl::StatusOr<std::unique_ptr<ServedModel>> ModelRepository::LoadVersion(
    const ModelFiles& files, int64_t version) const {
  SEGSERVE_ASSIGN_OR_RETURN(std::string weights_path,
                            files.weights_paths.at(version));
  ServedModel::Options served_options;
  served_options.config = *files.config;
  SEGSERVE_ASSIGN_OR_RETURN(
      served_options.devices,
      InstanceDevices(served_options.config, options_.cuda_device_count));
  served_options.version = version;
  served_options.weights_path = std::move(weights_path);
  served_options.loader = options_.loader;
  served_options.clock = options_.clock;
  served_options.metrics = options_.metrics;
  served_options.batch_timeout = options_.batch_timeout;
  return ServedModel::Create(std::move(served_options));
}

absl::Status ModelRepository::Reconcile(
    const std::string& name, const std::optional<std::string>& config_text,
    bool force) {
  const ModelFiles files = source_.Read(name, config_text);
  std::vector<int64_t> to_load;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return ShuttingDownError();
    ModelVersions& model = Model(name);
    if (!files.config.ok()) {
      const absl::Status kept = model.KeepAfterError(files.config.status());
      // Load's caller hears why; the loaded versions serve on either way.
      return force ? files.config.status() : kept;
    }
    to_load = model.StartChange(files, force);
    if (model.Unchanged(files, to_load)) return model.ReadyOrWhyNot();
  }

  ModelVersions::LoadedCopies loaded;
  for (int64_t version : to_load) {
    loaded.emplace(version, LoadVersion(files, version));
  }

  absl::MutexLock lock(&mu_);
  if (shut_down_) return ShuttingDownError();  // `loaded` is destroyed here.
  ModelVersions& model = Model(name);
  model.FinishChange(files, std::move(loaded));
  return model.ReadyOrWhyNot();
}

absl::Status ModelRepository::CheckExplicitMode(const char* action) const {
  if (options_.control_mode == ModelControlMode::kExplicit) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      action, " is not allowed: the server's model control mode is ",
      ModeName(options_.control_mode),
      options_.control_mode == ModelControlMode::kPoll
          ? ", which follows the files in the repository (change them "
            "instead)"
          : ", which never changes the models it serves",
      "; the explicit mode allows it"));
}

absl::Status ModelRepository::Load(
    const std::string& name, const std::optional<std::string>& config_text) {
  SEGSERVE_RETURN_IF_ERROR(CheckExplicitMode("loading a model"));
  SEGSERVE_RETURN_IF_ERROR(source_.CheckModelName(name));
  absl::MutexLock lifecycle(&lifecycle_mu_);
  return Reconcile(name, config_text, /*force=*/true);
}

absl::Status ModelRepository::Unload(const std::string& name) {
  SEGSERVE_RETURN_IF_ERROR(CheckExplicitMode("unloading a model"));
  absl::MutexLock lifecycle(&lifecycle_mu_);
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound(name);
  SEGSERVE_LOG(Info) << "model " << name << " is unloading";
  it->second.RetireAll("unloaded on request");
  return absl::OkStatus();
}

void ModelRepository::Poll() {
  if (options_.control_mode != ModelControlMode::kPoll) return;
  absl::MutexLock lifecycle(&lifecycle_mu_);
  absl::StatusOr<std::vector<std::string>> names = source_.ListModels();
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
      it->second.RetireAll("removed from the repository");
      it = models_.erase(it);
    }
  }
  for (const std::string& name : *names) {
    Reconcile(name, std::nullopt, /*force=*/false).IgnoreError();
  }
}

const ModelVersions* ModelRepository::FindModel(const std::string& name) const {
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
  for (const auto& [model, versions] : models_) {
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
    const std::string& name, int64_t version) const {
  absl::ReaderMutexLock lock(&mu_);
  const ModelVersions* model = FindModel(name);
  if (model == nullptr) return NotFound(name);
  if (shut_down_) return ShuttingDownError();
  return model->Find(version);
}

absl::StatusOr<ModelStatus> ModelRepository::Describe(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  const ModelVersions* model = FindModel(name);
  if (model == nullptr) return NotFound(name);
  return model->Status();
}

std::vector<ModelStatus> ModelRepository::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ModelStatus> statuses;
  for (const auto& [name, model] : models_) statuses.push_back(model.Status());
  return statuses;
}

void ModelRepository::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (auto& [name, model] : models_) model.Shutdown();
}

}  // namespace segserve
