#ifndef SEGSERVE_MODEL_PREPROCESS_H_
#define SEGSERVE_MODEL_PREPROCESS_H_

#include "common/preprocess_options.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

// The part of the model input that holds the image (all of it for STRETCH;
// the centred, aspect-preserving box for LETTERBOX).
struct ContentRegion {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
};

// Resizes an 8-bit RGB image (CV_8UC3) to the model's input size and writes
// 3 x height x width normalized floats (CHW) to `out`. LETTERBOX padding is
// zero after normalization. Returns where the image lies in the input.
// SLIDE models are tiled by model/slide_window.h; here they stretch (the
// whole-image scoring of the trainer and the benchmarks).
ContentRegion Preprocess(const cv::Mat& rgb, const PreprocessOptions& options,
                         float* out);

// Resizes `rgb` to `region`'s size (INTER_AREA when shrinking, bilinear when
// enlarging) and writes it, normalized, into `region` of the 3 x height x
// width input `out`; every other value of `out` becomes zero.
void PreprocessInto(const cv::Mat& rgb, const ContentRegion& region,
                    const PreprocessOptions& options, float* out);

// Maps labels (or confidence) computed at the model's input size back to the
// original image size with nearest-neighbour sampling of `region`.
cv::Mat MapToImageSize(const cv::Mat& input_sized, const ContentRegion& region,
                       int image_width, int image_height);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_PREPROCESS_H_
