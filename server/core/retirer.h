#ifndef SEGSERVE_SERVER_CORE_RETIRER_H_
#define SEGSERVE_SERVER_CORE_RETIRER_H_

#include <deque>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/core/served_model.h"

namespace segserve {

// Destroys model versions on a thread of its own. A version's destructor
// drains its queue and joins its instance threads: run on one of those
// threads it would join itself, and run on a request's thread it would
// stall that request's pool for as long as the queue takes. The repository
// shares every version through Share(), so whoever drops the last reference
// (a finished request, an unload, the repository itself) only hands it
// over. Thread-safe.
class Retirer {
 public:
  Retirer();
  // Destroys what was handed over, then joins.
  ~Retirer();

  Retirer(const Retirer&) = delete;
  Retirer& operator=(const Retirer&) = delete;

  // A shared version whose last reference goes to `retirer`'s thread.
  // The retirer lives at least as long as the version.
  static std::shared_ptr<ServedModel> Share(std::shared_ptr<Retirer> retirer,
                                            std::unique_ptr<ServedModel> model);

 private:
  void Retire(ServedModel* model);
  void Loop();

  absl::Mutex mu_;
  std::deque<std::unique_ptr<ServedModel>> retired_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_RETIRER_H_
