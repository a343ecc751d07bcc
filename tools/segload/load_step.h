#ifndef SEGSERVE_TOOLS_SEGLOAD_LOAD_STEP_H_
#define SEGSERVE_TOOLS_SEGLOAD_LOAD_STEP_H_

#include <cstdint>
#include <functional>

#include "tools/segload/load_runner.h"
#include "tools/segload/load_stats.h"

namespace segserve {

// How segload measures one step. Exactly one of three modes:
//   requests > 0     the measured requests are the `requests` sent after the
//                    warm-up (the runner's max_requests must be
//                    warmup_requests + requests); the step ends when they
//                    have all finished, or after max_step_s.
//   duration_s > 0   one window of duration_s.
//   otherwise        windows of window_s until IsStable(stability_percent)
//                    holds for the last three, or max_windows were run, or
//                    a window had failures and no success; the result
//                    covers the last (up to) three windows.
struct StepPlan {
  int64_t warmup_requests = 0;
  double warmup_max_s = 10;  // The warm-up ends after this at the latest.
  int64_t requests = 0;
  double max_step_s = 600;
  double duration_s = 0;
  double window_s = 5;
  int max_windows = 10;
  double stability_percent = 10;
};

// Where a step is, for a progress line.
struct StepProgress {
  bool warming_up = false;
  int window = 0;       // 1-based.
  int max_windows = 0;  // 0 when counting requests.
  double window_elapsed_s = 0;
  int64_t ok = 0;  // Measured requests finished in this window.
  int64_t failed = 0;
};

// Measures one step while `runner` sends into `sink`, calling `progress` (if
// set) about twice a second, then stops the runner. Fills everything of the
// result except the load level (concurrency, rate_rps). Blocks for the
// step's time: the warm-up, then max_windows * window_s, duration_s or
// max_step_s at most, then the runner's Stop().
LoadStepResult MeasureStep(
    const StepPlan& plan, SampleSink* sink, LoadRunner* runner,
    const std::function<void(const StepProgress&)>& progress);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_LOAD_STEP_H_
