#ifndef SEGSERVE_SERVER_CORE_MODEL_INSTANCE_H_
#define SEGSERVE_SERVER_CORE_MODEL_INSTANCE_H_

#include <memory>
#include <thread>

#include "common/clock.h"
#include "model/segmentation_model.h"
#include "server/core/dynamic_batcher.h"
#include "server/core/metrics.h"
#include "server/core/service_time.h"

namespace segserve {

// One copy of a model on one device, with the thread that feeds it: takes
// batches from the batcher, runs them outside any lock and completes each
// request. The thread starts in the constructor and is joined in the
// destructor, after the batcher has been shut down and drained.
class ModelInstance {
 public:
  // `batcher`, `clock` and `service_time` must outlive the instance.
  ModelInstance(std::unique_ptr<SegmentationModel> model,
                DynamicBatcher* batcher, Clock* clock,
                Metrics::ModelMetrics metrics, ServiceTime* service_time);
  ~ModelInstance();

  const SegmentationModel& model() const { return *model_; }

 private:
  void RunLoop();

  std::unique_ptr<SegmentationModel> model_;
  DynamicBatcher* const batcher_;
  Clock* const clock_;
  const Metrics::ModelMetrics metrics_;
  ServiceTime* const service_time_;
  std::thread thread_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_CORE_MODEL_INSTANCE_H_
