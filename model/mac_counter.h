// Counting the multiply-accumulates of convolutions and linear layers as a
// forward pass runs them, at the shapes they actually see.
//
// The C++ frontend has no forward hooks, so the counter observes the
// operator calls instead (ATen's RecordFunction, thread-local): every
// top-level aten::conv1d/conv2d/conv3d/convolution/_convolution and
// aten::linear adds
//   convolution  output elements x (in_channels / groups) x kernel area
//                (weight.numel() / out_channels: right for grouped and
//                depthwise convs); transposed: input elements x
//                (out_channels / groups) x kernel area
//   linear       output elements x in_features
// Calls nested inside a counted one (conv2d -> convolution -> ...) are not
// counted again. Matmuls outside linear layers (attention products),
// normalizations, pooling and resizes are not counted: the figure is the
// "conv + linear" count the papers quote.
//
// Caveat: LibTorch 1.13's nn::Linear::forward does not call aten::linear but
// matmul/addmm, which cannot be told from attention products; the project's
// linear layers therefore run through torch::linear (ssa::Linear).
//
// The header is torch-free; the .cc needs LibTorch.

#ifndef SEGSERVE_MODEL_MAC_COUNTER_H_
#define SEGSERVE_MODEL_MAC_COUNTER_H_

#include <cstdint>

namespace segserve {

struct MacCount {
  int64_t conv = 0;
  int64_t linear = 0;
  int64_t total() const { return conv + linear; }
};

// Counts the MACs of the ops this thread runs between construction and
// destruction (also under InferenceMode). Counters nest: an inner one counts
// its span and adds it to the enclosing one when it dies. Not copyable;
// construct and destroy on one thread, innermost first.
class MacCounter {
 public:
  MacCounter();
  ~MacCounter();
  MacCounter(const MacCounter&) = delete;
  MacCounter& operator=(const MacCounter&) = delete;

  const MacCount& count() const { return count_; }

 private:
  MacCount count_;
  MacCount* previous_;   // The enclosing counter's, or null.
  uint64_t handle_ = 0;  // at::CallbackHandle; 0 when none was added.
};

}  // namespace segserve

#endif  // SEGSERVE_MODEL_MAC_COUNTER_H_
