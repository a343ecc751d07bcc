#include "tools/segload/load_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "client/request_util.h"
#include "opencv2/core/mat.hpp"

namespace segserve {
namespace {

using Clock = std::chrono::steady_clock;

int64_t Micros(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::microseconds>(duration)
      .count();
}

// Turns the result of one call that started at `start` into a sample,
// decoding the mask when asked.
LoadSample MakeSample(int64_t seq, int target, const LoadInput& input,
                      Clock::time_point start, bool decode_mask,
                      const absl::StatusOr<v1::SegmentResponse>& result) {
  const Clock::time_point received = Clock::now();
  LoadSample sample;
  sample.seq = seq;
  sample.target = target;
  sample.code = result.status().code();
  sample.wait_us = Micros(received - start);
  sample.serialize_us = input.serialize_us;
  if (result.ok()) {
    const v1::Timing& timing = result->timing();
    sample.queue_us = timing.queue_us();
    sample.preprocess_us = timing.preprocess_us();
    sample.inference_us = timing.inference_us();
    sample.postprocess_us = timing.postprocess_us();
    sample.batch_size = timing.batch_size();
    if (decode_mask) {
      const absl::StatusOr<cv::Mat> mask = DecodeMaskToMat(result->mask());
      sample.deserialize_us = Micros(Clock::now() - received);
      if (!mask.ok() || mask->cols != input.width ||
          mask->rows != input.height) {
        sample.code = absl::StatusCode::kDataLoss;
      }
    }
  }
  sample.latency_us = sample.wait_us + sample.deserialize_us;
  return sample;
}

// What request `seq` uses (see the header's round robin).
struct Assignment {
  size_t client;
  const LoadInput* input;
};

Assignment Assign(const LoadRunnerOptions& options, int64_t seq) {
  const auto index = static_cast<size_t>(seq);
  const size_t clients = options.clients.size();
  return {index % clients,
          &(*options.inputs)[(index / clients) % options.inputs->size()]};
}

class ClosedLoopRunner final : public LoadRunner {
 public:
  ClosedLoopRunner(const LoadRunnerOptions& options, int concurrency)
      : options_(options) {
    workers_.reserve(concurrency);
    for (int i = 0; i < concurrency; ++i) {
      workers_.emplace_back([this] { Work(); });
    }
  }

  ~ClosedLoopRunner() override { Stop(); }

  void Stop() override {
    stop_.store(true);
    for (std::thread& worker : workers_) {
      if (worker.joinable()) worker.join();
    }
  }

 private:
  void Work() {
    while (!stop_.load(std::memory_order_relaxed)) {
      const int64_t seq = next_.fetch_add(1);
      if (options_.max_requests > 0 && seq >= options_.max_requests) return;
      const Assignment a = Assign(options_, seq);
      const Clock::time_point start = Clock::now();
      const absl::StatusOr<v1::SegmentResponse> result =
          options_.clients[a.client]->Send(a.input->request);
      options_.sink->Add(MakeSample(seq, options_.client_targets[a.client],
                                    *a.input, start, options_.decode_masks,
                                    result));
    }
  }

  const LoadRunnerOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> next_{0};
  std::vector<std::thread> workers_;
};

class OpenLoopRunner final : public LoadRunner {
 public:
  OpenLoopRunner(const LoadRunnerOptions& options, double rate_rps,
                 Arrivals arrivals, uint64_t seed, int max_outstanding)
      : options_(options),
        max_outstanding_(max_outstanding),
        schedule_(arrivals, rate_rps, seed) {
    scheduler_ = std::thread([this] { Schedule(); });
  }

  ~OpenLoopRunner() override { Stop(); }

  void Stop() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (scheduler_.joinable()) scheduler_.join();
    // The callbacks use `this`: wait until the last one is done with it.
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int64_t* outstanding) { return *outstanding == 0; },
        &outstanding_));
  }

 private:
  bool CanSend() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || outstanding_ < max_outstanding_;
  }

  // Waits for `due` and a free slot; false when stopped meanwhile.
  bool WaitToSend(Clock::time_point due) {
    absl::MutexLock lock(&mu_);
    for (Clock::time_point now = Clock::now(); !stop_ && now < due;
         now = Clock::now()) {
      mu_.AwaitWithTimeout(absl::Condition(&stop_),
                           absl::FromChrono(due - now));
    }
    mu_.Await(absl::Condition(this, &OpenLoopRunner::CanSend));
    if (stop_) return false;
    ++outstanding_;
    return true;
  }

  void Schedule() {
    const Clock::time_point start = Clock::now();
    for (int64_t seq = 0;
         options_.max_requests == 0 || seq < options_.max_requests; ++seq) {
      const Clock::time_point due =
          start + std::chrono::nanoseconds(schedule_.NextOffsetNs());
      if (!WaitToSend(due)) return;
      const Assignment a = Assign(options_, seq);
      const int target = options_.client_targets[a.client];
      const Clock::time_point sent = Clock::now();
      options_.sink->NoteSend(seq, std::max<int64_t>(0, Micros(sent - due)));
      options_.clients[a.client]->SendAsync(
          a.input->request, [this, seq, target, input = a.input,
                             sent](absl::StatusOr<v1::SegmentResponse> result) {
            options_.sink->Add(MakeSample(seq, target, *input, sent,
                                          options_.decode_masks, result));
            absl::MutexLock lock(&mu_);
            --outstanding_;
          });
    }
  }

  const LoadRunnerOptions options_;
  const int64_t max_outstanding_;
  ArrivalSchedule schedule_;  // Used by the scheduler thread only.
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread scheduler_;
};

}  // namespace

void SampleSink::Add(const LoadSample& sample) {
  absl::MutexLock lock(&mu_);
  if (sample.seq < warmup_requests_) {
    ++warmup_finished_;
    return;
  }
  ++measured_finished_;
  if (sample.code == absl::StatusCode::kOk) {
    ++pending_.ok;
  } else {
    ++pending_.failed;
  }
  window_.samples.push_back(sample);
}

void SampleSink::NoteSend(int64_t seq, int64_t lag_us) {
  if (seq < warmup_requests_) return;
  absl::MutexLock lock(&mu_);
  ++window_.sent;
  if (lag_us > kLateSendUs) ++window_.late_sends;
  window_.max_send_lag_us = std::max(window_.max_send_lag_us, lag_us);
}

SampleSink::Window SampleSink::Take() {
  absl::MutexLock lock(&mu_);
  Window taken = std::move(window_);
  window_ = Window();
  pending_ = TargetCounts();
  return taken;
}

bool SampleSink::AwaitWarmup(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(
      absl::Condition(
          +[](SampleSink* sink) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return sink->warmup_finished_ >= sink->warmup_requests_;
          },
          this),
      timeout);
}

bool SampleSink::AwaitMeasured(int64_t n, absl::Duration timeout) {
  struct Args {
    SampleSink* sink;
    int64_t n;
  } args = {this, n};
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                    return a->sink->measured_finished_ >= a->n;
                                  },
                                  &args),
                              timeout);
}

TargetCounts SampleSink::Pending() const {
  absl::MutexLock lock(&mu_);
  return pending_;
}

std::unique_ptr<LoadRunner> StartClosedLoop(const LoadRunnerOptions& options,
                                            int concurrency) {
  return std::make_unique<ClosedLoopRunner>(options, concurrency);
}

std::unique_ptr<LoadRunner> StartOpenLoop(const LoadRunnerOptions& options,
                                          double rate_rps, Arrivals arrivals,
                                          uint64_t seed, int max_outstanding) {
  return std::make_unique<OpenLoopRunner>(options, rate_rps, arrivals, seed,
                                          max_outstanding);
}

}  // namespace segserve
