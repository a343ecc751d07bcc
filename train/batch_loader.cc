#include "train/batch_loader.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "opencv2/core/utility.hpp"

namespace segserve {
namespace {

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

BatchLoader::BatchLoader(const LabeledImageSource& source,
                         const Options& options)
    : source_(source), options_(options) {
  thread_ = std::thread([this] { Run(); });
}

BatchLoader::~BatchLoader() {
  {
    absl::MutexLock lock(&mutex_);
    stop_ = true;
  }
  thread_.join();
}

int64_t BatchLoader::SourceIndex(int64_t sample) {
  const int64_t size = source_.size();
  if (size == 0) return sample;
  // A fixed permutation per epoch, drawn once per epoch.
  const int64_t epoch = sample / size;
  if (epoch != order_epoch_) {
    order_.resize(static_cast<size_t>(size));
    std::iota(order_.begin(), order_.end(), 0);
    std::mt19937_64 random(Mix(options_.seed, static_cast<uint64_t>(epoch)));
    std::shuffle(order_.begin(), order_.end(), random);
    order_epoch_ = epoch;
  }
  return order_[static_cast<size_t>(sample % size)];
}

absl::StatusOr<TrainingBatch> BatchLoader::Build(int64_t first) {
  const int n = options_.batch_size;
  TrainingBatch batch;
  for (int i = 0; i < n; ++i) {
    const int64_t sample = first + i;
    SEGSERVE_ASSIGN_OR_RETURN(LabeledImage image,
                              source_.Get(SourceIndex(sample)));
    const TrainingSample made = MakeTrainingSample(
        image.rgb, image.labels, options_.preprocess, options_.augment,
        /*augment=*/true, Mix(options_.seed, static_cast<uint64_t>(sample)));
    const int h = made.labels.rows;
    const int w = made.labels.cols;
    if (i == 0) {
      batch.input = torch::empty({n, 3, h, w}, torch::kFloat);
      batch.labels = torch::empty({n, h, w}, torch::kLong);
    }
    // Plain loops, not tensor ops: a LibTorch op large enough to run in
    // parallel would start a second OpenMP pool on this thread, and with
    // more pooled threads than cores libgomp sleeps on a futex in every
    // parallel region of the training thread too (BENCHMARKS.md).
    std::copy(made.input.begin(), made.input.end(),
              batch.input[i].data_ptr<float>());
    int64_t* labels = batch.labels[i].data_ptr<int64_t>();
    for (int y = 0; y < h; ++y) {
      const uint8_t* row = made.labels.ptr<uint8_t>(y);
      std::copy(row, row + w, labels + int64_t(y) * w);
    }
  }
  return batch;
}

void BatchLoader::Run() {
  // The optimizer's threads get the cores; image work stays on this one.
  cv::setNumThreads(1);
  int64_t next = options_.first_sample;
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      auto room = [this]() ABSL_SHARED_LOCKS_REQUIRED(mutex_) {
        return stop_ ||
               static_cast<int>(ready_.size()) < options_.prefetch_batches;
      };
      mutex_.Await(absl::Condition(&room));
      if (stop_) return;
    }
    absl::StatusOr<TrainingBatch> batch = Build(next);
    next += options_.batch_size;
    absl::MutexLock lock(&mutex_);
    ready_.push_back(std::move(batch));
  }
}

absl::StatusOr<TrainingBatch> BatchLoader::Next() {
  absl::MutexLock lock(&mutex_);
  auto has_batch = [this]() ABSL_SHARED_LOCKS_REQUIRED(mutex_) {
    return !ready_.empty();
  };
  mutex_.Await(absl::Condition(&has_batch));
  absl::StatusOr<TrainingBatch> batch = std::move(ready_.front());
  ready_.pop_front();
  return batch;
}

}  // namespace segserve
