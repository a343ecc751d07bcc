#include "model/preprocess.h"

#include <algorithm>
#include <cmath>

#include "opencv2/imgproc.hpp"

namespace segserve {

ContentRegion Preprocess(const cv::Mat& rgb, const PreprocessOptions& options,
                         float* out) {
  ContentRegion region{0, 0, options.width, options.height};
  if (options.resize == PreprocessOptions::Resize::kLetterbox) {
    const double scale = std::min(double(options.width) / rgb.cols,
                                  double(options.height) / rgb.rows);
    region.width =
        std::clamp(int(std::lround(rgb.cols * scale)), 1, options.width);
    region.height =
        std::clamp(int(std::lround(rgb.rows * scale)), 1, options.height);
    region.x = (options.width - region.width) / 2;
    region.y = (options.height - region.height) / 2;
  }
  PreprocessInto(rgb, region, options, out);
  return region;
}

void PreprocessInto(const cv::Mat& rgb, const ContentRegion& region,
                    const PreprocessOptions& options, float* out) {
  cv::Mat resized;
  if (rgb.cols == region.width && rgb.rows == region.height) {
    resized = rgb;
  } else {
    // INTER_AREA avoids aliasing when shrinking; bilinear when enlarging.
    const bool shrinking = region.width < rgb.cols || region.height < rgb.rows;
    cv::resize(rgb, resized, cv::Size(region.width, region.height), 0, 0,
               shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  }

  const size_t plane = size_t(options.height) * options.width;
  std::fill(out, out + 3 * plane, 0.0f);
  float scale[3];
  float shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / options.std[c];
    shift[c] = -options.mean[c] / options.std[c];
  }
  for (int y = 0; y < region.height; ++y) {
    const uint8_t* src = resized.ptr<uint8_t>(y);
    const size_t row = size_t(y + region.y) * options.width + region.x;
    float* r = out + row;
    float* g = out + plane + row;
    float* b = out + 2 * plane + row;
    for (int x = 0; x < region.width; ++x) {
      r[x] = src[3 * x] * scale[0] + shift[0];
      g[x] = src[3 * x + 1] * scale[1] + shift[1];
      b[x] = src[3 * x + 2] * scale[2] + shift[2];
    }
  }
}

cv::Mat MapToImageSize(const cv::Mat& input_sized, const ContentRegion& region,
                       int image_width, int image_height) {
  const cv::Mat content =
      input_sized(cv::Rect(region.x, region.y, region.width, region.height));
  if (content.cols == image_width && content.rows == image_height) {
    return content.clone();
  }
  cv::Mat out;
  cv::resize(content, out, cv::Size(image_width, image_height), 0, 0,
             cv::INTER_NEAREST);
  return out;
}

}  // namespace segserve
