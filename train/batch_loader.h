// Builds training batches on a background thread, ahead of the optimizer.
// Only train/*.cc include this header (LibTorch).
#ifndef SEGSERVE_TRAIN_BATCH_LOADER_H_
#define SEGSERVE_TRAIN_BATCH_LOADER_H_

#include <torch/types.h>

#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "datasets/dataset.h"
#include "train/augment.h"

namespace segserve {

struct TrainingBatch {
  torch::Tensor input;   // N x 3 x H x W float.
  torch::Tensor labels;  // N x H x W int64 (255 = ignore).
};

class BatchLoader {
 public:
  struct Options {
    int batch_size = 8;
    // Batch b holds samples first_sample + b * batch_size + 0..batch_size-1;
    // sample k is source image k (a bounded source is walked in an order
    // shuffled per epoch) augmented with a seed drawn from (seed, k), so a
    // resumed run sees the same samples as an uninterrupted one.
    int64_t first_sample = 0;
    uint64_t seed = 0;
    int prefetch_batches = 2;
    PreprocessOptions preprocess;
    AugmentOptions augment;
  };

  // `source` must outlive the loader.
  BatchLoader(const LabeledImageSource& source, const Options& options);
  ~BatchLoader();  // Stops and joins the thread.

  // The next batch, or the error of the image that could not be read.
  absl::StatusOr<TrainingBatch> Next();

 private:
  void Run();
  // Both run on the loader thread only.
  int64_t SourceIndex(int64_t sample);
  absl::StatusOr<TrainingBatch> Build(int64_t first);

  const LabeledImageSource& source_;
  const Options options_;
  absl::Mutex mutex_;
  std::deque<absl::StatusOr<TrainingBatch>> ready_ ABSL_GUARDED_BY(mutex_);
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  // The sample order of a bounded source's current epoch.
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
  std::thread thread_;
};

}  // namespace segserve

#endif  // SEGSERVE_TRAIN_BATCH_LOADER_H_
