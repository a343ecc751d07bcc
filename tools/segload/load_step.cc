#include "tools/segload/load_step.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace segserve {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kProgressInterval = std::chrono::milliseconds(500);

double Seconds(Clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

Clock::duration FromSeconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(seconds));
}

// One measured window and how long it lasted.
struct TimedWindow {
  SampleSink::Window window;
  double elapsed_s = 0;
};

class StepMeasurer {
 public:
  StepMeasurer(const StepPlan& plan, SampleSink* sink,
               const std::function<void(const StepProgress&)>& progress)
      : plan_(plan), sink_(sink), progress_(progress) {}

  void WarmUp() {
    if (plan_.warmup_requests > 0) {
      const Clock::time_point end =
          Clock::now() + FromSeconds(plan_.warmup_max_s);
      const Clock::time_point start = Clock::now();
      while (Clock::now() < end &&
             !sink_->AwaitWarmup(absl::FromChrono(std::min<Clock::duration>(
                 kProgressInterval, end - Clock::now())))) {
        Report(/*warming_up=*/true, 0, start);
      }
    }
    warmup_window_ = sink_->Take();
  }

  // Count mode: one window of the first plan_.requests measured requests.
  TimedWindow MeasureCount() {
    const Clock::time_point start = Clock::now();
    const Clock::time_point end = start + FromSeconds(plan_.max_step_s);
    while (Clock::now() < end &&
           !sink_->AwaitMeasured(plan_.requests,
                                 absl::FromChrono(std::min<Clock::duration>(
                                     kProgressInterval, end - Clock::now())))) {
      Report(/*warming_up=*/false, 1, start);
    }
    TimedWindow timed;
    timed.elapsed_s = Seconds(Clock::now() - start);
    timed.window = std::move(warmup_window_);
    SampleSink::Window rest = sink_->Take();
    Append(std::move(rest), &timed.window);
    return timed;
  }

  // One window of `length_s`, starting where the previous one ended.
  TimedWindow MeasureWindow(int index, double length_s) {
    const Clock::time_point end = window_start_ + FromSeconds(length_s);
    for (Clock::time_point now = Clock::now(); now < end; now = Clock::now()) {
      std::this_thread::sleep_for(
          std::min<Clock::duration>(kProgressInterval, end - now));
      Report(/*warming_up=*/false, index, window_start_);
    }
    TimedWindow timed;
    timed.window = sink_->Take();
    const Clock::time_point now = Clock::now();
    timed.elapsed_s = Seconds(now - window_start_);
    window_start_ = now;
    return timed;
  }

  void StartWindows() { window_start_ = Clock::now(); }

  static void Append(SampleSink::Window from, SampleSink::Window* to) {
    to->samples.insert(to->samples.end(), from.samples.begin(),
                       from.samples.end());
    to->sent += from.sent;
    to->late_sends += from.late_sends;
    to->max_send_lag_us = std::max(to->max_send_lag_us, from.max_send_lag_us);
  }

 private:
  void Report(bool warming_up, int window, Clock::time_point start) const {
    if (!progress_) return;
    StepProgress p;
    p.warming_up = warming_up;
    p.window = window;
    p.max_windows = plan_.requests > 0     ? 0
                    : plan_.duration_s > 0 ? 1
                                           : plan_.max_windows;
    p.window_elapsed_s = Seconds(Clock::now() - start);
    const TargetCounts pending = sink_->Pending();
    p.ok = pending.ok;
    p.failed = pending.failed;
    progress_(p);
  }

  const StepPlan& plan_;
  SampleSink* const sink_;
  const std::function<void(const StepProgress&)>& progress_;
  SampleSink::Window warmup_window_;  // Measured requests that beat it.
  Clock::time_point window_start_;
};

LoadStepResult Summarize(const SampleSink::Window& window, double elapsed_s) {
  LoadStepResult result = SummarizeSamples(window.samples, elapsed_s);
  result.sent = window.sent;
  result.late_sends = window.late_sends;
  result.max_send_lag_us = window.max_send_lag_us;
  return result;
}

}  // namespace

LoadStepResult MeasureStep(
    const StepPlan& plan, SampleSink* sink, LoadRunner* runner,
    const std::function<void(const StepProgress&)>& progress) {
  StepMeasurer measurer(plan, sink, progress);
  measurer.WarmUp();
  if (plan.requests > 0) {
    const TimedWindow timed = measurer.MeasureCount();
    runner->Stop();
    LoadStepResult result = Summarize(timed.window, timed.elapsed_s);
    result.windows = 1;
    return result;
  }

  // Time modes: what finished during the warm-up is not measured.
  const bool fixed = plan.duration_s > 0;
  const int max_windows = fixed ? 1 : std::max(plan.max_windows, 1);
  std::vector<TimedWindow> windows;
  std::vector<WindowStats> stats;
  measurer.StartWindows();
  for (int i = 1; i <= max_windows; ++i) {
    windows.push_back(
        measurer.MeasureWindow(i, fixed ? plan.duration_s : plan.window_s));
    const LoadStepResult w = SummarizeSamples(windows.back().window.samples,
                                              windows.back().elapsed_s);
    stats.push_back({w.throughput_rps, w.latency_us.p95});
    if (!fixed && IsStable(stats, plan.stability_percent)) break;
    // Nothing will stabilise while every request fails: stop hammering.
    if (w.ok == 0 && w.failed > 0) break;
  }
  runner->Stop();

  SampleSink::Window merged;
  double elapsed_s = 0;
  const size_t first = windows.size() > 3 ? windows.size() - 3 : 0;
  for (size_t i = first; i < windows.size(); ++i) {
    StepMeasurer::Append(std::move(windows[i].window), &merged);
    elapsed_s += windows[i].elapsed_s;
  }
  LoadStepResult result = Summarize(merged, elapsed_s);
  result.windows = static_cast<int>(windows.size());
  result.stability_checked = !fixed;
  result.stable = !fixed && IsStable(stats, plan.stability_percent);
  return result;
}

}  // namespace segserve
