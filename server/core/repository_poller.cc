#include "server/core/repository_poller.h"

namespace segserve {

RepositoryPoller::RepositoryPoller(ModelRepository* repository,
                                   absl::Duration interval)
    : repository_(repository), thread_([this, interval] { Loop(interval); }) {}

RepositoryPoller::~RepositoryPoller() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void RepositoryPoller::Loop(absl::Duration interval) {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) {
    // Unlocked meanwhile: a poll loads what changed, which takes a while.
    mu_.Unlock();
    repository_->Poll();
    mu_.Lock();
  }
}

}  // namespace segserve
