#ifndef SEGSERVE_MODEL_PREPROCESS_H_
#define SEGSERVE_MODEL_PREPROCESS_H_

#include <array>
#include <cstdint>

#include "common/preprocess_options.h"
#include "model/model_input.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

// Where an image of this size lies in the model's input: all of it, or for
// LETTERBOX the centred, aspect-preserving box. SLIDE models are tiled by
// model/slide_window.h; here they stretch (the whole-image scoring of the
// trainer and the benchmarks).
ContentRegion PlaceImage(int image_width, int image_height,
                         const PreprocessOptions& options);

// Resizes an 8-bit RGB image (CV_8UC3) to `region`'s size (INTER_AREA when
// shrinking, bilinear when enlarging) and writes it into `region` of an
// input_width x input_height x 3 HWC buffer `out`; every other byte of `out`
// becomes zero.
void ResizeInto(const cv::Mat& rgb, const ContentRegion& region,
                int input_width, int input_height, uint8_t* out);

// What a model does first: writes `region` of an HWC input (ResizeInto's
// answer) as 3 x height x width normalized floats (CHW), (pixel - mean) /
// std computed as pixel * (1 / std) + (-mean / std) in float, and zero
// elsewhere. The CPU path of every model runs this; a GPU does the same
// arithmetic on its device.
void Normalize(const uint8_t* rgb, const ContentRegion& region, int input_width,
               int input_height, const std::array<float, 3>& mean,
               const std::array<float, 3>& std, float* out);

// Normalize for rows [first_row, end_row) only, so that a batch's rows can
// be shared among threads. `layout` kHwc writes height x width x 3 floats
// (a channels-last image) with the same arithmetic.
enum class FloatLayout { kChw, kHwc };
void NormalizeRows(const uint8_t* rgb, const ContentRegion& region,
                   int input_width, int input_height,
                   const std::array<float, 3>& mean,
                   const std::array<float, 3>& std, float* out, int first_row,
                   int end_row, FloatLayout layout = FloatLayout::kChw);

// The serving input of an image: placed, resized and written as HWC bytes
// (input_width x input_height x 3) to `out`. Returns where the image lies.
ContentRegion PreprocessBytes(const cv::Mat& rgb,
                              const PreprocessOptions& options, uint8_t* out);

// PreprocessBytes then Normalize: 3 x height x width normalized floats, as
// the model sees them (training, benchmarks, tests).
ContentRegion Preprocess(const cv::Mat& rgb, const PreprocessOptions& options,
                         float* out);

// Maps labels (or confidence) computed at the model's input size back to the
// original image size with nearest-neighbour sampling of `region`.
cv::Mat MapToImageSize(const cv::Mat& input_sized, const ContentRegion& region,
                       int image_width, int image_height);

}  // namespace segserve

#endif  // SEGSERVE_MODEL_PREPROCESS_H_
