#ifndef SEGSERVE_SERVER_CORE_MODEL_REPOSITORY_H_
#define SEGSERVE_SERVER_CORE_MODEL_REPOSITORY_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "segserve/v1/model_config.pb.h"
#include "server/core/metrics.h"
#include "server/core/model_source.h"
#include "server/core/model_status.h"
#include "server/core/model_versions.h"
#include "server/core/retirer.h"
#include "server/core/served_model.h"

namespace segserve {

// How the set of served models changes after start (Triton's
// --model-control-mode): kNone, never; kPoll, Poll() rescans the directory;
// kExplicit, only what Options::startup_models names and Load/Unload ask.
enum class ModelControlMode { kNone, kPoll, kExplicit };

// The models of a Triton-style repository directory (ModelDirectory
// scans it; ModelVersions holds each model's lifecycle). Every model and
// version loads independently: one that fails is reported UNAVAILABLE with its
// reason and the others serve. Models are LOADING from Create until LoadAll
// reaches them, so a server can answer (health, ListModels) while they load.
// Each config's version_policy picks the versions served.
//
// Changes drop no traffic: a new or changed version loads and warms while
// the old copies serve; it replaces them in one step, so that requests
// naming no version move to it once it is ready; a version that goes
// leaves the lookup at once but lives (UNLOADING) until the last request
// admitted to it has been answered. A reload that fails keeps the old copy
// serving. Loads, unloads and polls run one at a time. Thread-safe.
class ModelRepository {
 public:
  struct Options {
    std::string root;
    // Empty: the repository's only model when it holds one (except in the
    // explicit mode); else requests must name a model.
    std::string default_model;
    ModelLoader loader;
    int cuda_device_count = 0;
    Clock* clock = nullptr;        // Must outlive the repository.
    Metrics* metrics = nullptr;    // Must outlive the repository.
    absl::Duration batch_timeout;  // ServedModel::Options::batch_timeout.
    ModelControlMode control_mode = ModelControlMode::kNone;
    // kExplicit: the models LoadAll loads (and the default model); the rest
    // wait for Load. Each must have a directory.
    std::vector<std::string> startup_models;
  };

  // Lists the models, all LOADING (in kExplicit mode, those not to be
  // loaded at start are UNAVAILABLE); loads none. Fails only when the root
  // cannot be listed or the default model or a startup model has no
  // directory.
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(
      Options options);

  // Loads the models one after another, each version ready as soon as it
  // has loaded. Returns early, leaving the rest UNAVAILABLE, once
  // CancelLoading or Shutdown is called. Call once.
  void LoadAll();
  void CancelLoading();

  ModelControlMode control_mode() const { return options_.control_mode; }

  // kExplicit only (FAILED_PRECONDITION otherwise, naming the mode): loads
  // the model `name` of the directory, or reloads it, from its files or
  // with `config_text` (protobuf text, checked like config.pbtxt) in place
  // of config.pbtxt. Blocks until every selected version has been tried;
  // returns the error when none is ready. NOT_FOUND for a name with no
  // directory; INVALID_ARGUMENT for one that is not a single component.
  absl::Status Load(const std::string& name,
                    const std::optional<std::string>& config_text);
  // kExplicit only: every version of `name` stops taking requests and goes
  // once its admitted requests are answered; the model stays listed,
  // UNAVAILABLE.
  absl::Status Unload(const std::string& name);
  // kPoll: rescans the directory once. New models and versions load, models
  // and versions gone (or no longer selected) unload, and a changed config
  // or weights file reloads its versions. Does nothing in other modes.
  void Poll();
  // Whether the server can take traffic: loading has finished and the default
  // model (with no default model: some model) has a ready version with a
  // healthy instance.
  bool IsReady() const;

  // The ready version to serve: NOT_FOUND for an unknown model or version,
  // UNAVAILABLE (with the load error) for one that failed to load or has
  // been shut down. Empty name: the default model; version 0: the latest
  // ready one.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(const std::string& name,
                                                    int64_t version) const;

  absl::StatusOr<ModelStatus> Describe(const std::string& name) const;
  std::vector<ModelStatus> List() const;

  const std::string& default_model() const { return options_.default_model; }

  // Stops every model from accepting requests; queued ones still run.
  void Shutdown();

 private:
  explicit ModelRepository(Options options)
      : options_(std::move(options)), source_(options_.root) {}
  // Brings `name` to what its files (or `config_text`) say; the caller
  // holds lifecycle_mu_. Returns the model's error when no version is
  // ready afterwards. `force`: load every selected version again, changed
  // or not (Load).
  absl::Status Reconcile(const std::string& name,
                         const std::optional<std::string>& config_text,
                         bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lifecycle_mu_);
  absl::StatusOr<std::unique_ptr<ServedModel>> LoadVersion(
      const ModelFiles& files, int64_t version) const;
  // The model `name`, listed now if it was not.
  ModelVersions& Model(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const ModelVersions* FindModel(const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status NotFound(const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status CheckExplicitMode(const char* action) const;

  const Options options_;
  const ModelDirectory source_;
  // Tears down the versions this repository drops (declared before the
  // models: it outlives them).
  const std::shared_ptr<Retirer> retirer_ = std::make_shared<Retirer>();
  // Held by LoadAll, Load, Unload and Poll: one change at a time. Taken
  // before mu_, which guards the state and is never held during a load.
  absl::Mutex lifecycle_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::map<std::string, ModelVersions> models_ ABSL_GUARDED_BY(mu_);
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_loading_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_REPOSITORY_H_
