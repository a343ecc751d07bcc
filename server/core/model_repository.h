#ifndef SEGSERVE_SERVER_CORE_MODEL_REPOSITORY_H_
#define SEGSERVE_SERVER_CORE_MODEL_REPOSITORY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "segserve/v1/model_config.pb.h"
#include "server/core/metrics.h"
#include "server/core/retirer.h"
#include "server/core/served_model.h"

namespace segserve {

// A version's life: LOADING -> READY -> UNLOADING (draining its queue before
// it goes) -> UNAVAILABLE; a failed load goes from LOADING to UNAVAILABLE.
enum class ModelState { kLoading, kReady, kUnloading, kUnavailable };

struct VersionStatus {
  std::string version;
  ModelState state = ModelState::kLoading;
  std::string reason;  // Why the version is unavailable.
};

// What GetModel/ListModels report about one model: a record, holding no
// live objects, so a caller may keep it while versions come and go.
struct ModelStatus {
  std::string name;
  ModelState state = ModelState::kUnavailable;  // Of the latest ready version.
  std::string reason;
  std::vector<VersionStatus> versions;  // Ascending.
  bool has_config = false;
  v1::ModelConfig config;  // Valid when has_config.
  // The latest ready version and where it runs; empty when none is ready.
  std::string latest_version;
  std::vector<std::string> devices;
  int64_t parameter_count = 0;
};

// The models of a Triton-style repository directory:
//   <root>/<name>/config.pbtxt, <root>/<name>/<integer version>/model.pt
// Every model and version loads independently: one that fails is reported
// UNAVAILABLE with its reason and the others serve. Models are LOADING from
// Create until LoadAll reaches them, so a server can answer (health,
// ListModels) while they load. Thread-safe.
class ModelRepository {
 public:
  struct Options {
    std::string root;
    std::string default_model;  // Empty: requests must name a model.
    ModelLoader loader;
    int cuda_device_count = 0;
    Clock* clock = nullptr;        // Must outlive the repository.
    Metrics* metrics = nullptr;    // Must outlive the repository.
    absl::Duration batch_timeout;  // ServedModel::Options::batch_timeout.
  };

  // Lists the models, all LOADING; loads none. Fails only when the root
  // cannot be listed or the default model has no directory.
  static absl::StatusOr<std::unique_ptr<ModelRepository>> Create(
      Options options);

  // Loads the models one after another, each version ready as soon as it
  // has loaded. Returns early, leaving the rest UNAVAILABLE, once
  // CancelLoading or Shutdown is called. Call once.
  void LoadAll();
  void CancelLoading();

  // Whether the server can take traffic: loading has finished and the default
  // model (with no default model: some model) has a ready version with a
  // healthy instance.
  bool IsReady() const;

  // The ready version to serve: NOT_FOUND for an unknown model or version,
  // UNAVAILABLE (with the load error) for one that failed to load or has
  // been shut down. Empty name: the default model; empty version: latest
  // ready.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(
      const std::string& name, const std::string& version) const;

  absl::StatusOr<ModelStatus> Describe(const std::string& name) const;
  std::vector<ModelStatus> List() const;

  const std::string& default_model() const { return options_.default_model; }

  // Stops every model from accepting requests; queued ones still run.
  void Shutdown();

 private:
  struct Entry {
    ModelStatus status;
    std::map<int64_t, std::shared_ptr<ServedModel>> ready;  // By version.
  };

  explicit ModelRepository(Options options) : options_(std::move(options)) {}
  Entry LoadModel(const std::string& name) const;
  static bool HasHealthyVersion(const Entry& entry);
  const Entry* FindEntry(const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status NotFound(const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Options options_;
  // Tears down the versions this repository drops (declared before the
  // entries: it outlives them).
  const std::shared_ptr<Retirer> retirer_ = std::make_shared<Retirer>();
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_loading_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

const char* ModelStateName(ModelState state);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_REPOSITORY_H_
