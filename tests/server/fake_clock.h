#ifndef SEGSERVE_TESTS_SERVER_FAKE_CLOCK_H_
#define SEGSERVE_TESTS_SERVER_FAKE_CLOCK_H_

#include <atomic>

#include "common/clock.h"

namespace segserve {

// A clock that moves only when Advance() is called. Waiters re-check their
// condition and the fake time every millisecond of real time.
class FakeClock : public Clock {
 public:
  absl::Time Now() override {
    return absl::UnixEpoch() + absl::Nanoseconds(now_ns_.load());
  }
  void Advance(absl::Duration d) {
    now_ns_.fetch_add(absl::ToInt64Nanoseconds(d));
  }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& condition,
                         absl::Time deadline) override {
    while (!condition.Eval()) {
      if (Now() >= deadline) return false;
      mu->AwaitWithTimeout(condition, absl::Milliseconds(1));
    }
    return true;
  }

 private:
  std::atomic<int64_t> now_ns_{1'000'000'000'000};
};

}  // namespace segserve

#endif  // SEGSERVE_TESTS_SERVER_FAKE_CLOCK_H_
