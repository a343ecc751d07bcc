#ifndef SEGSERVE_SERVER_CORE_REPOSITORY_POLLER_H_
#define SEGSERVE_SERVER_CORE_REPOSITORY_POLLER_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/model_repository.h"

namespace segserve {

// Rescans a repository in the poll control mode (ModelRepository::Poll)
// every `interval`, on a thread of its own, from construction until
// destruction.
class RepositoryPoller {
 public:
  // `repository` must outlive the poller.
  RepositoryPoller(ModelRepository* repository, absl::Duration interval);
  // Stops; a poll under way (a load) finishes first.
  ~RepositoryPoller();

  RepositoryPoller(const RepositoryPoller&) = delete;
  RepositoryPoller& operator=(const RepositoryPoller&) = delete;

 private:
  void Loop(absl::Duration interval);

  ModelRepository* const repository_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_REPOSITORY_POLLER_H_
