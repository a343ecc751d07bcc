// Turns a labelled image into one training sample at the model's input
// size: the serving preprocessing (STRETCH or LETTERBOX resize, the model's
// mean and std) plus random scale, placement (crop or pad) and flips.
// Torch-free.
#ifndef SEGSERVE_TRAIN_AUGMENT_H_
#define SEGSERVE_TRAIN_AUGMENT_H_

#include <cstdint>
#include <vector>

#include "model/preprocess.h"
#include "opencv2/core/mat.hpp"

namespace segserve {

// Label of pixels that carry no loss (letterbox padding, crop padding).
inline constexpr uint8_t kIgnoreLabel = 255;

struct AugmentOptions {
  // The image is resized as the server would, then by a factor drawn
  // uniformly from [min_scale, max_scale], then placed at a random offset
  // (cropped where larger than the input, padded where smaller).
  double min_scale = 0.75;
  double max_scale = 1.25;
  // The share of samples resized as LETTERBOX whatever the model's mode: a
  // STRETCH model then also learns content beside padding, which a
  // LETTERBOX config of the same weights feeds it. 0 draws nothing, so
  // recipes without it are unchanged.
  double letterbox_chance = 0;
  bool horizontal_flip = true;
  bool vertical_flip = true;
  // The sample's size: a window of the scaled image, at the same pixel
  // scale as the server's input. 0: the model's input size.
  int crop_width = 0;
  int crop_height = 0;
  // A crop is redrawn (up to 10 times) while one class fills more than this
  // share of its labelled pixels, so crops show objects, not only
  // background (mmsegmentation's cat_max_ratio). 1: off.
  double max_class_ratio = 0.75;
  // Photometric augmentation of the placed sample, each step drawn on its
  // own: colour jitter (per-channel gain, contrast and brightness), Gaussian
  // blur, Gaussian noise over every pixel (objects too) and JPEG
  // re-encoding. Off: the sample keeps the source's pixels.
  bool photometric = false;
  double jitter_chance = 0.8;
  double blur_chance = 0.3;
  double max_blur_sigma = 1.5;
  double noise_chance = 0.5;
  double max_noise_sigma = 15;
  double jpeg_chance = 0.3;
  int min_jpeg_quality = 30;  // ..95.
};

struct TrainingSample {
  // 3 x height x width normalized RGB (CHW); height x width is the crop
  // size when augmenting with one, else the model's input size.
  std::vector<float> input;
  cv::Mat labels;  // height x width CV_8U; kIgnoreLabel = no loss.
};

// `rgb`: CV_8UC3 RGB; `labels`: CV_8U of the same size. `seed` draws the
// augmentation. With `augment` false the sample is exactly what the server
// feeds the model (labels resized by nearest neighbour, padding ignored).
TrainingSample MakeTrainingSample(const cv::Mat& rgb, const cv::Mat& labels,
                                  const PreprocessOptions& preprocess,
                                  const AugmentOptions& options, bool augment,
                                  uint64_t seed);

}  // namespace segserve

#endif  // SEGSERVE_TRAIN_AUGMENT_H_
