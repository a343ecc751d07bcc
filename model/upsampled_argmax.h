// The served mask from low-resolution logits in one pass: bilinear
// upsampling (align_corners false, as F::interpolate) fused with the
// per-pixel argmax and, optionally, the winning softmax probability.
//
// The unfused path writes the C x H x W upsampled logits (19 classes at
// 512x512: 20 MB an image) and reads them back once for the argmax and again
// for the softmax; this pass keeps two source rows, interpolated along the
// width, in cache and never materializes the upsampled logits. The
// arithmetic is F::interpolate's (the width first, then the height, with
// its source indices and weights), so labels differ from the unfused path's
// only where two classes' interpolated logits are within rounding of each
// other (tests/model/upsampled_argmax_test.cc measures it).
//
// Torch-free: it works on raw float pointers with any strides.

#ifndef SEGSERVE_MODEL_UPSAMPLED_ARGMAX_H_
#define SEGSERVE_MODEL_UPSAMPLED_ARGMAX_H_

#include <cstdint>

namespace segserve {

// One image's logits: classes x height x width floats, element strides given
// separately (NCHW and channels-last both work).
struct LogitsPlane {
  const float* data = nullptr;
  int64_t classes = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t class_stride = 0;
  int64_t row_stride = 0;
  int64_t column_stride = 0;
};

// Where the rows [row_begin, row_end) of the out_height x out_width mask go.
// labels: row-major, uint8 when classes <= 256, else uint16 (as
// `wide_labels`). confidence: row-major uint8, round(255 * winning softmax
// probability), or null when not wanted. The first class wins ties; a NaN
// logit never wins (except as class 0).
struct UpsampledMask {
  void* labels = nullptr;
  bool wide_labels = false;
  uint8_t* confidence = nullptr;
  int64_t height = 0;
  int64_t width = 0;
};

// Fills rows [row_begin, row_end) of `mask`. Thread-safe for disjoint row
// ranges of the same mask (each call keeps its own buffers).
void UpsampledArgmaxRows(const LogitsPlane& logits, const UpsampledMask& mask,
                         int64_t row_begin, int64_t row_end);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_UPSAMPLED_ARGMAX_H_
