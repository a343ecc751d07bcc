// Where a model's time goes, op by op: while an OpProfile lives, every
// top-level ATen op called on its thread (ATen's RecordFunction; ops they
// call are inside their time) is timed and counted under its name and the
// shapes of its tensor arguments, so each row is one layer kind at one
// size. Convolutions also get their multiply-accumulates (as
// model/mac_counter.h counts them).
//
// The header is torch-free; the .cc needs LibTorch.

#ifndef SEGSERVE_BENCH_OP_PROFILE_H_
#define SEGSERVE_BENCH_OP_PROFILE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace segserve {

struct OpRow {
  std::string op;       // aten::conv2d
  std::string details;  // Shapes, and for convolutions the kind of kernel.
  int64_t calls = 0;
  double seconds = 0;
  int64_t macs = 0;  // Convolutions and linear layers; 0 otherwise.
};

class OpProfile {
 public:
  OpProfile();
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  // The rows so far, the most time first.
  std::vector<OpRow> Rows() const;

  // Called by the callbacks on this profile's thread.
  void Add(const std::string& key, const OpRow& call);

 private:
  std::map<std::string, OpRow> rows_;
  uint64_t handle_ = 0;  // at::CallbackHandle.
};

}  // namespace segserve

#endif  // SEGSERVE_BENCH_OP_PROFILE_H_
