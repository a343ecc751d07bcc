#ifndef SEGSERVE_SERVER_CORE_MODEL_INSTANCE_H_
#define SEGSERVE_SERVER_CORE_MODEL_INSTANCE_H_

#include <memory>
#include <string>
#include <thread>

#include "common/clock.h"
#include "model/segmentation_model.h"
#include "server/core/dynamic_batcher.h"
#include "server/core/metrics.h"
#include "server/core/model_statistics.h"
#include "server/core/service_time.h"

namespace segserve {

// One copy of a model on one device, with the thread that feeds it: takes
// batches from the batcher, runs them outside any lock and completes each
// request. The thread starts in the constructor and is joined in the
// destructor, after the batcher has been shut down and drained.
//
// A batch that hangs (a wedged device, a model stuck in a loop) is expired
// by the model's watchdog (ExpireIfStuck): its requests are answered at
// once and the instance goes out of service for good. Its thread stays
// with the model until the call returns, if ever; the destructor then lets
// it go instead of waiting.
class ModelInstance {
 public:
  // `batcher`, `clock`, `service_time` and `statistics` must outlive the
  // instance (but not a stuck thread that the destructor let go). `index`:
  // the instance's place among its model's, for `service_time`.
  ModelInstance(std::unique_ptr<SegmentationModel> model,
                DynamicBatcher* batcher, Clock* clock,
                Metrics::ModelMetrics metrics, ServiceTime* service_time,
                int index, ModelStatistics* statistics);
  ~ModelInstance();

  // Whether the instance takes batches: false once a batch expired.
  bool healthy() const;

  // When the batch under way started more than `timeout` before `now`:
  // answers its requests UNAVAILABLE, takes the instance out of service,
  // logs why, and returns true. Thread-safe.
  bool ExpireIfStuck(absl::Time now, absl::Duration timeout);

 private:
  // What the instance's thread shares with the rest; owned jointly, so that
  // a thread let go by the destructor still has it when its call returns.
  struct State;

  static void RunLoop(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_INSTANCE_H_
