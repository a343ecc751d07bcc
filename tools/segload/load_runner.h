#ifndef SEGSERVE_TOOLS_SEGLOAD_LOAD_RUNNER_H_
#define SEGSERVE_TOOLS_SEGLOAD_LOAD_RUNNER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "tools/segload/load_inputs.h"
#include "tools/segload/load_schedule.h"
#include "tools/segload/load_stats.h"
#include "tools/segload/request_sender.h"

namespace segserve {

// segload's request senders: a closed loop (N workers, each sending its next
// request when the previous one returns) and an open loop (sends on a
// schedule, never waiting for responses). Requests are numbered from 0 in
// send order; request `seq` goes to client seq % clients and carries input
// (seq / clients) % inputs, so consecutive requests alternate between
// clients (and targets) and every client sees every input.

// Collects finished requests from the senders' threads. Requests numbered
// below `warmup_requests` are warm-up: counted, never recorded. Thread-safe.
class SampleSink {
 public:
  explicit SampleSink(int64_t warmup_requests)
      : warmup_requests_(warmup_requests) {}

  void Add(const LoadSample& sample);
  // An open-loop send of request `seq` that left `lag_us` after its
  // scheduled time (warm-up sends are not counted).
  void NoteSend(int64_t seq, int64_t lag_us);

  // What was recorded since the previous Take().
  struct Window {
    std::vector<LoadSample> samples;
    int64_t sent = 0;
    int64_t late_sends = 0;  // Sent more than kLateSendUs late.
    int64_t max_send_lag_us = 0;
  };
  Window Take();

  // Block until every warm-up request has finished, or `timeout`; true when
  // they have.
  bool AwaitWarmup(absl::Duration timeout);
  // Block until `n` measured requests have finished since construction, or
  // `timeout`; true when they have.
  bool AwaitMeasured(int64_t n, absl::Duration timeout);
  // Measured requests finished since the previous Take(): {ok, failed}.
  TargetCounts Pending() const;

 private:
  const int64_t warmup_requests_;
  mutable absl::Mutex mu_;
  int64_t warmup_finished_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t measured_finished_ ABSL_GUARDED_BY(mu_) = 0;
  Window window_ ABSL_GUARDED_BY(mu_);
  TargetCounts pending_ ABSL_GUARDED_BY(mu_);
};

struct LoadRunnerOptions {
  // Where requests go, round robin; not owned, must outlive the runner.
  std::vector<RequestSender*> clients;
  std::vector<int> client_targets;  // The target index of each client.
  // The requests, round robin; not owned, must outlive the runner.
  const std::vector<LoadInput>* inputs = nullptr;
  // Decode each mask (timed as deserialize_us); a mask that does not decode
  // or whose size differs from the image's counts as DATA_LOSS.
  bool decode_masks = true;
  // Requests to send in all, warm-up included; 0: until Stop().
  int64_t max_requests = 0;
  SampleSink* sink = nullptr;  // Not owned, must outlive the runner.
};

// A running sender. Destruction stops it (see Stop).
class LoadRunner {
 public:
  virtual ~LoadRunner() = default;
  // Sends nothing more and returns once every request sent has finished,
  // which each request's deadline bounds. Call from one thread; idempotent.
  virtual void Stop() = 0;
};

// Starts `concurrency` workers, each sending its next request (blocking
// Segment) when the previous one has finished.
std::unique_ptr<LoadRunner> StartClosedLoop(const LoadRunnerOptions& options,
                                            int concurrency);

// Starts a scheduler thread that sends with Client::SegmentAsync at the
// times of ArrivalSchedule(arrivals, rate_rps, seed). At most
// `max_outstanding` requests are in flight: a send that would exceed it waits
// (and so is late).
std::unique_ptr<LoadRunner> StartOpenLoop(const LoadRunnerOptions& options,
                                          double rate_rps, Arrivals arrivals,
                                          uint64_t seed, int max_outstanding);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_LOAD_RUNNER_H_
