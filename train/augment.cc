#include "train/augment.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

using Uniform = std::function<double(double, double)>;

// Colour jitter: each channel scaled by its own gain, then the contrast
// around the mean grey, then a brightness offset.
void JitterColours(cv::Mat& rgb, const Uniform& uniform) {
  const cv::Scalar gain(uniform(0.8, 1.2), uniform(0.8, 1.2),
                        uniform(0.8, 1.2));
  const double contrast = uniform(0.7, 1.3);
  const double brightness = uniform(-30, 30);
  cv::Mat pixels;
  rgb.convertTo(pixels, CV_32FC3);
  pixels = pixels.mul(cv::Mat(pixels.size(), CV_32FC3, gain));
  const cv::Scalar mean = cv::mean(pixels);
  const double grey = (mean[0] + mean[1] + mean[2]) / 3;
  pixels = (pixels - cv::Scalar::all(grey)) * contrast +
           cv::Scalar::all(grey + brightness);
  pixels.convertTo(rgb, CV_8UC3);  // Rounds and saturates.
}

void AddNoise(cv::Mat& rgb, double sigma, uint64_t seed) {
  cv::Mat pixels;
  rgb.convertTo(pixels, CV_32FC3);
  cv::Mat noise(rgb.size(), CV_32FC3);
  cv::RNG(seed).fill(noise, cv::RNG::NORMAL, 0.0, sigma);
  pixels += noise;
  pixels.convertTo(rgb, CV_8UC3);
}

void ReencodeJpeg(cv::Mat& rgb, int quality) {
  std::vector<uint8_t> bytes;
  cv::imencode(".jpg", rgb, bytes, {cv::IMWRITE_JPEG_QUALITY, quality});
  // Channel order does not matter for a round trip.
  rgb = cv::imdecode(bytes, cv::IMREAD_COLOR);
}

void ApplyPhotometric(cv::Mat& rgb, const AugmentOptions& options,
                      const Uniform& uniform, uint64_t noise_seed) {
  if (uniform(0, 1) < options.jitter_chance) JitterColours(rgb, uniform);
  if (uniform(0, 1) < options.blur_chance) {
    cv::GaussianBlur(rgb, rgb, cv::Size(0, 0),
                     uniform(0.3, options.max_blur_sigma));
  }
  if (uniform(0, 1) < options.noise_chance) {
    AddNoise(rgb, uniform(0, options.max_noise_sigma), noise_seed);
  }
  if (uniform(0, 1) < options.jpeg_chance) {
    ReencodeJpeg(rgb, static_cast<int>(uniform(options.min_jpeg_quality, 96)));
  }
}

}  // namespace

TrainingSample MakeTrainingSample(const cv::Mat& rgb, const cv::Mat& labels,
                                  const PreprocessOptions& preprocess,
                                  const AugmentOptions& options, bool augment,
                                  uint64_t seed) {
  std::mt19937_64 random(seed);
  auto uniform = [&random](double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(random() >> 11) * 0x1.0p-53;
  };
  // The content size the server would use, then the random scale.
  double scale_x = static_cast<double>(preprocess.width) / rgb.cols;
  double scale_y = static_cast<double>(preprocess.height) / rgb.rows;
  const bool letterbox =
      preprocess.resize == PreprocessOptions::Resize::kLetterbox ||
      (augment && options.letterbox_chance > 0 &&
       uniform(0, 1) < options.letterbox_chance);
  if (letterbox) {
    scale_x = scale_y = std::min(scale_x, scale_y);
  }
  const double extra =
      augment ? uniform(options.min_scale, options.max_scale) : 1.0;
  const int content_width =
      std::max(1, static_cast<int>(std::lround(rgb.cols * scale_x * extra)));
  const int content_height =
      std::max(1, static_cast<int>(std::lround(rgb.rows * scale_y * extra)));
  const bool crop =
      augment && options.crop_width > 0 && options.crop_height > 0;
  const int width = crop ? options.crop_width : preprocess.width;
  const int height = crop ? options.crop_height : preprocess.height;

  cv::Mat resized;
  const bool shrinking = content_width < rgb.cols;
  cv::resize(rgb, resized, cv::Size(content_width, content_height), 0, 0,
             shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  cv::Mat resized_labels;
  cv::resize(labels, resized_labels, cv::Size(content_width, content_height), 0,
             0, cv::INTER_NEAREST);

  // Offset of the content in the input: centred as the server does, or
  // anywhere that keeps the input covered as far as the content allows.
  auto offset = [&](int content, int input) {
    if (!augment) return (input - content) / 2;
    const int lo = std::min(0, input - content);
    const int hi = std::max(0, input - content);
    return lo + static_cast<int>(uniform(0, hi - lo + 1));
  };
  int offset_x = offset(content_width, width);
  int offset_y = offset(content_height, height);
  if (crop && options.max_class_ratio < 1) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      const cv::Rect window = cv::Rect(-offset_x, -offset_y, width, height) &
                              cv::Rect(0, 0, content_width, content_height);
      int histogram[256] = {};
      for (int y = window.y; y < window.y + window.height; ++y) {
        const uint8_t* row = resized_labels.ptr<uint8_t>(y);
        for (int x = window.x; x < window.x + window.width; ++x) {
          ++histogram[row[x]];
        }
      }
      int labelled = 0;
      int largest = 0;
      for (int c = 0; c < kIgnoreLabel; ++c) {
        labelled += histogram[c];
        largest = std::max(largest, histogram[c]);
      }
      if (labelled > 0 && largest <= options.max_class_ratio * labelled) break;
      offset_x = offset(content_width, width);
      offset_y = offset(content_height, height);
    }
  }

  cv::Mat canvas(height, width, CV_8UC3, cv::Scalar(0, 0, 0));
  TrainingSample sample;
  sample.labels = cv::Mat(height, width, CV_8U, cv::Scalar(kIgnoreLabel));
  const cv::Rect input_rect(0, 0, width, height);
  const cv::Rect placed(offset_x, offset_y, content_width, content_height);
  const cv::Rect visible = placed & input_rect;
  const cv::Rect source(visible.x - offset_x, visible.y - offset_y,
                        visible.width, visible.height);
  resized(source).copyTo(canvas(visible));
  resized_labels(source).copyTo(sample.labels(visible));
  cv::Mat valid(height, width, CV_8U, cv::Scalar(0));
  valid(visible).setTo(1);

  if (augment && options.photometric) {
    ApplyPhotometric(canvas, options, uniform, random());
  }
  if (augment) {
    const bool flip_h = options.horizontal_flip && uniform(0, 1) < 0.5;
    const bool flip_v = options.vertical_flip && uniform(0, 1) < 0.5;
    const int code = flip_h && flip_v ? -1 : (flip_h ? 1 : 0);
    if (flip_h || flip_v) {
      cv::flip(canvas, canvas, code);
      cv::flip(sample.labels, sample.labels, code);
      cv::flip(valid, valid, code);
    }
  }

  // Normalize; padding is 0 after normalization, as in Preprocess().
  const size_t plane = static_cast<size_t>(width) * height;
  sample.input.assign(3 * plane, 0.0f);
  for (int y = 0; y < height; ++y) {
    const uint8_t* pixels = canvas.ptr<uint8_t>(y);
    const uint8_t* inside = valid.ptr<uint8_t>(y);
    for (int x = 0; x < width; ++x) {
      if (!inside[x]) continue;
      const size_t i = static_cast<size_t>(y) * width + x;
      for (int c = 0; c < 3; ++c) {
        sample.input[c * plane + i] =
            (pixels[3 * x + c] - preprocess.mean[c]) / preprocess.std[c];
      }
    }
  }
  return sample;
}

}  // namespace segserve
