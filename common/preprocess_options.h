#ifndef SEGSERVE_COMMON_PREPROCESS_OPTIONS_H_
#define SEGSERVE_COMMON_PREPROCESS_OPTIONS_H_

#include <array>

namespace segserve {

// ImageNet statistics on 0..255 RGB values: the default normalization of
// every builtin architecture and of configs that give none.
inline constexpr std::array<float, 3> kImageNetMean = {123.675f, 116.28f,
                                                       103.53f};
inline constexpr std::array<float, 3> kImageNetStd = {58.395f, 57.12f, 57.375f};

// What a model's input is: its size, how images are resized to it and how
// pixels are normalized. Filled from a model config (config/model_config.h)
// and applied by model/preprocess.h.
struct PreprocessOptions {
  // kSlide: overlapping tiles of the image at its own resolution
  // (model/slide_window.h); whole-image code paths stretch instead.
  enum class Resize { kStretch, kLetterbox, kSlide };
  int height = 512;  // The model's input size.
  int width = 512;
  Resize resize = Resize::kStretch;
  // kSlide only: the tile size in image pixels and the step between tiles.
  int crop_height = 512;
  int crop_width = 512;
  int stride_height = 341;
  int stride_width = 341;
  // RGB order, on 0..255 values: x = (pixel - mean) / std.
  std::array<float, 3> mean = kImageNetMean;
  std::array<float, 3> std = kImageNetStd;
};

}  // namespace segserve

#endif  // SEGSERVE_COMMON_PREPROCESS_OPTIONS_H_
