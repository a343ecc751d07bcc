#ifndef SEGSERVE_TESTS_SERVER_FAKE_MODEL_H_
#define SEGSERVE_TESTS_SERVER_FAKE_MODEL_H_

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "model/segmentation_model.h"

namespace segserve {

// Shared between a test and the fake models it creates.
struct FakeModelState {
  absl::Mutex mu;
  std::vector<int> batch_sizes ABSL_GUARDED_BY(mu);
  // Labels of every image run, in order: the first input byte of each.
  std::vector<float> first_values ABSL_GUARDED_BY(mu);
  absl::Status error ABSL_GUARDED_BY(mu);       // Returned when not OK.
  bool throw_next ABSL_GUARDED_BY(mu) = false;  // The next batch throws.
  // When set, each batch waits for `release` before returning.
  std::shared_ptr<absl::Notification> release ABSL_GUARDED_BY(mu);
  int batches_started ABSL_GUARDED_BY(mu) = 0;
  absl::Duration delay ABSL_GUARDED_BY(mu);  // Each batch sleeps this long.

  std::vector<int> BatchSizes() {
    absl::MutexLock lock(&mu);
    return batch_sizes;
  }
  void AwaitBatchesStarted(int n) {
    absl::MutexLock lock(&mu);
    auto started = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return batches_started >= n;
    };
    mu.Await(absl::Condition(&started));
  }
};

// Labels every pixel with the first input byte (the red of the input's
// top-left pixel), so a test can tell each request's answer from the input
// it sent. Logits, when asked, are per pixel: 1 for class (its red) %
// classes, else 0. The fake does not normalize.
class FakeModel : public SegmentationModel {
 public:
  FakeModel(std::shared_ptr<FakeModelState> state, int height, int width,
            int classes = 4)
      : state_(std::move(state)),
        height_(height),
        width_(width),
        classes_(classes) {}

  absl::StatusOr<std::vector<InferenceOutput>> Infer(
      absl::Span<const ModelInput> inputs, OutputKinds kinds) override {
    std::shared_ptr<absl::Notification> release;
    absl::Duration delay;
    {
      absl::MutexLock lock(&state_->mu);
      ++state_->batches_started;
      release = state_->release;
      delay = state_->delay;
    }
    if (release) release->WaitForNotification();
    absl::SleepFor(delay);
    absl::MutexLock lock(&state_->mu);
    state_->batch_sizes.push_back(int(inputs.size()));
    if (!state_->error.ok()) return state_->error;
    if (state_->throw_next) {
      state_->throw_next = false;
      throw std::runtime_error("fake model exploded");
    }
    std::vector<InferenceOutput> outputs;
    for (const ModelInput& input : inputs) {
      state_->first_values.push_back(input.rgb[0]);
      InferenceOutput out;
      out.labels = cv::Mat(height_, width_, CV_8UC1, cv::Scalar(input.rgb[0]));
      if (kinds.confidence) {
        out.confidence = cv::Mat(height_, width_, CV_8UC1, cv::Scalar(200));
      }
      if (kinds.logits) {
        const int dims[] = {classes_, height_, width_};
        out.logits = cv::Mat(3, dims, CV_32F, cv::Scalar(0));
        const int plane = height_ * width_;
        for (int i = 0; i < plane; ++i) {
          const int label = input.rgb[3 * i] % classes_;
          out.logits.ptr<float>(label)[i] = 1.0f;
        }
      }
      outputs.push_back(std::move(out));
    }
    return outputs;
  }
  std::string device() const override { return "cpu"; }
  int64_t parameter_count() const override { return 42; }

 private:
  std::shared_ptr<FakeModelState> state_;
  int height_;
  int width_;
  int classes_;
};

}  // namespace segserve

#endif  // SEGSERVE_TESTS_SERVER_FAKE_MODEL_H_
