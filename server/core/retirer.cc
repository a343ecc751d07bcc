#include "server/core/retirer.h"

#include <utility>

namespace segserve {

Retirer::Retirer() : thread_([this] { Loop(); }) {}

Retirer::~Retirer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::shared_ptr<ServedModel> Retirer::Share(
    std::shared_ptr<Retirer> retirer, std::unique_ptr<ServedModel> model) {
  // The deleter holds the retirer: it outlives every version it retires.
  return std::shared_ptr<ServedModel>(
      model.release(), [retirer = std::move(retirer)](ServedModel* retired) {
        retirer->Retire(retired);
      });
}

void Retirer::Retire(ServedModel* model) {
  absl::MutexLock lock(&mu_);
  retired_.emplace_back(model);
}

void Retirer::Loop() {
  while (true) {
    std::unique_ptr<ServedModel> model;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !retired_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&has_work));
      if (retired_.empty()) return;  // Stopping, and nothing is left.
      model = std::move(retired_.front());
      retired_.pop_front();
    }
    model.reset();  // Drains the version's queue and joins its instances.
  }
}

}  // namespace segserve
