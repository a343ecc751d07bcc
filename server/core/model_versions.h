#ifndef SEGSERVE_SERVER_CORE_MODEL_VERSIONS_H_
#define SEGSERVE_SERVER_CORE_MODEL_VERSIONS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/metrics.h"
#include "server/core/model_source.h"
#include "server/core/model_status.h"
#include "server/core/retirer.h"
#include "server/core/served_model.h"

namespace segserve {

// One model's lifecycle: the copies of its versions that serve, those
// retiring (out of service, alive while a request holds them), what its
// last load tried, and its status. The repository decides when to change
// it and loads the copies; this class decides what a change loads and
// swaps the copies in. Not thread-safe: the repository's lock guards it.
class ModelVersions {
 public:
  using LoadedCopies =
      std::map<int64_t, absl::StatusOr<std::unique_ptr<ServedModel>>>;

  // `retirer` tears down the copies this model drops; `metrics` hears
  // which versions are ready. Both must outlive every copy.
  ModelVersions(std::string name, std::shared_ptr<Retirer> retirer,
                Metrics* metrics);

  ModelState state() const { return status_.state; }
  // Before any version has loaded: the model's state and why.
  void SetPending(ModelState state, std::string reason);

  // The versions of `files` to load: new ones, and those whose config or
  // weights changed since they were last tried (`force`: every selected
  // one). Shows the new ones LOADING meanwhile.
  std::vector<int64_t> StartChange(const ModelFiles& files, bool force);
  // Whether `files` need no change: nothing to load (StartChange empty),
  // nothing to retire, and the versions could be listed.
  bool Unchanged(const ModelFiles& files,
                 const std::vector<int64_t>& to_load) const;
  // Serves what `files` select: a loaded copy replaces the old one in one
  // step, a failed reload keeps the old copy serving, a version no longer
  // selected retires. With no versions to list, everything retires.
  void FinishChange(const ModelFiles& files, LoadedCopies loaded);
  // Keeps serving what is loaded when the model's files cannot be read;
  // OK when something serves, else UNAVAILABLE with `error`.
  absl::Status KeepAfterError(const absl::Status& error);
  // Every version out of service; the model stays listed, UNAVAILABLE.
  void RetireAll(const std::string& reason);
  // Stops every copy from taking requests; queued ones still run.
  void Shutdown();

  // OK when a version is ready, else UNAVAILABLE saying why not.
  absl::Status ReadyOrWhyNot() const;
  // Whether a ready version has a healthy instance.
  bool Healthy() const;
  // The version to serve (0: the latest ready one): UNAVAILABLE when it
  // is not ready, NOT_FOUND when the model has no such version.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(int64_t version) const;
  // The status, with the retiring versions' states added.
  ModelStatus Status() const;

 private:
  // Puts `copy` of `version` out of service (see retiring_).
  void Retire(int64_t version, const std::shared_ptr<ServedModel>& copy,
              bool replaced);
  // The state, reason and latest version, from the ready copies.
  void Summarize();
  // Logs `line` unless `error` was the last one logged.
  void LogOnce(const std::string& error, const std::string& line);

  const std::shared_ptr<Retirer> retirer_;
  Metrics* const metrics_;
  // Versions in status_ are the selected ones; Status() adds those still
  // retiring.
  ModelStatus status_;
  std::map<int64_t, std::shared_ptr<ServedModel>> ready_;
  // Copies taken out of service and not yet destroyed: UNLOADING while
  // some request holds them.
  std::multimap<int64_t, std::weak_ptr<ServedModel>> retiring_;
  // What the last load tried (serialized config, weights stamps): a poll
  // loads again only what changed since, so a broken version is not
  // retried, and its error not logged, at every poll.
  std::string tried_config_;
  std::map<int64_t, std::string> tried_stamps_;
  std::string last_error_;  // Of the model's files, logged once.
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_VERSIONS_H_
