#ifndef SEGSERVE_COMMON_CLOCK_H_
#define SEGSERVE_COMMON_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace segserve {

// Time source for components whose behaviour depends on time (the batcher).
// Tests substitute a fake clock that only moves when told to.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
  // Waits with `mu` held until `condition` holds or Now() reaches `deadline`.
  // Returns whether the condition holds.
  virtual bool AwaitWithDeadline(absl::Mutex* mu,
                                 const absl::Condition& condition,
                                 absl::Time deadline) = 0;
};

class RealClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                         absl::Time deadline) override {
    return mu->AwaitWithDeadline(condition, deadline);
  }
  // A process-wide instance; RealClock has no state.
  static RealClock* Get() {
    static RealClock* clock = new RealClock();
    return clock;
  }
};

}  // namespace segserve

#endif  // SEGSERVE_COMMON_CLOCK_H_
