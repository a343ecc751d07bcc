#ifndef SEGSERVE_SERVER_MODEL_INSTANCE_H_
#define SEGSERVE_SERVER_MODEL_INSTANCE_H_

#include <functional>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "model/segmentation_model.h"
#include "server/dynamic_batcher.h"
#include "server/metrics.h"

namespace segserve {

// One copy of a model on one device, with the thread that feeds it: takes
// batches from the batcher, runs them outside any lock and completes each
// request.
//
// The model is created and warmed up through that same thread, so that all
// of a model's LibTorch work starts from one place: for GPU models this
// thread, for CPU models the CPU lanes the loader hands them to
// (server/cpu_lanes.h). LibTorch's CPU kernels run on an OpenMP pool that
// belongs to the thread that starts them; a pool left behind by loading on
// another thread made SGCPNet's batch-1 inference take 1.8x as long on 2
// cores (BENCHMARKS.md).
class ModelInstance {
 public:
  using ModelFactory =
      std::function<absl::StatusOr<std::unique_ptr<SegmentationModel>>()>;
  using WarmUp = std::function<absl::Status(SegmentationModel&)>;

  // Starts the thread, creates the model there with `make_model`, runs
  // `warm_up` on it and returns once the instance takes batches, or with the
  // first error (the thread has then ended). `batcher`, `clock` and
  // `metrics` must outlive the instance.
  static absl::StatusOr<std::unique_ptr<ModelInstance>> Start(
      ModelFactory make_model, WarmUp warm_up, DynamicBatcher* batcher,
      Clock* clock, Metrics::ModelMetrics metrics);

  // Shuts the batcher down (when the model started) and joins the thread
  // after the queue has drained.
  ~ModelInstance();

  const SegmentationModel& model() const { return *model_; }

 private:
  ModelInstance(DynamicBatcher* batcher, Clock* clock,
                Metrics::ModelMetrics metrics);

  void Run(ModelFactory make_model, WarmUp warm_up);
  void ServeBatches();

  DynamicBatcher* const batcher_;
  Clock* const clock_;
  const Metrics::ModelMetrics metrics_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;  // Created and warmed up, or not.
  absl::Status start_status_ ABSL_GUARDED_BY(mu_);
  // Written by the thread before it sets started_; read-only afterwards.
  std::unique_ptr<SegmentationModel> model_;
  std::thread thread_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_MODEL_INSTANCE_H_
