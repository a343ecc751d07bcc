#include "model/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "opencv2/imgproc.hpp"

namespace segserve {

ContentRegion PlaceImage(int image_width, int image_height,
                         const PreprocessOptions& options) {
  ContentRegion region{0, 0, options.width, options.height};
  if (options.resize == PreprocessOptions::Resize::kLetterbox) {
    const double scale = std::min(double(options.width) / image_width,
                                  double(options.height) / image_height);
    region.width =
        std::clamp(int(std::lround(image_width * scale)), 1, options.width);
    region.height =
        std::clamp(int(std::lround(image_height * scale)), 1, options.height);
    region.x = (options.width - region.width) / 2;
    region.y = (options.height - region.height) / 2;
  }
  return region;
}

void ResizeInto(const cv::Mat& rgb, const ContentRegion& region,
                int input_width, int input_height, uint8_t* out) {
  const size_t row_bytes = size_t(input_width) * 3;
  cv::Mat input(input_height, input_width, CV_8UC3, out, row_bytes);
  if (!region.Covers(input_width, input_height)) {
    std::memset(out, 0, row_bytes * input_height);
  }
  cv::Mat content =
      input(cv::Rect(region.x, region.y, region.width, region.height));
  if (rgb.cols == region.width && rgb.rows == region.height) {
    rgb.copyTo(content);
    return;
  }
  // INTER_AREA avoids aliasing when shrinking; bilinear when enlarging.
  // Resized straight into the input: `content` keeps its buffer, since the
  // size and type already match.
  const bool shrinking = region.width < rgb.cols || region.height < rgb.rows;
  cv::resize(rgb, content, content.size(), 0, 0,
             shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
}

void NormalizeRows(const uint8_t* rgb, const ContentRegion& region,
                   int input_width, int input_height,
                   const std::array<float, 3>& mean,
                   const std::array<float, 3>& std, float* out, int first_row,
                   int end_row, FloatLayout layout) {
  const size_t plane = size_t(input_height) * input_width;
  float scale[3];
  float shift[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / std[c];
    shift[c] = -mean[c] / std[c];
  }
  if (layout == FloatLayout::kHwc) {
    for (int y = first_row; y < end_row; ++y) {
      float* row = out + 3 * size_t(y) * input_width;
      if (y < region.y || y >= region.y + region.height) {
        std::fill(row, row + 3 * input_width, 0.0f);
        continue;
      }
      std::fill(row, row + 3 * region.x, 0.0f);
      std::fill(row + 3 * (region.x + region.width), row + 3 * input_width,
                0.0f);
      const uint8_t* src = rgb + 3 * (size_t(y) * input_width + region.x);
      float* dst = row + 3 * region.x;
      for (int x = 0; x < region.width; ++x) {
        for (int c = 0; c < 3; ++c) {
          dst[3 * x + c] = src[3 * x + c] * scale[c] + shift[c];
        }
      }
    }
    return;
  }
  for (int y = first_row; y < end_row; ++y) {
    const size_t row = size_t(y) * input_width;
    float* planes[3] = {out + row, out + plane + row, out + 2 * plane + row};
    if (y < region.y || y >= region.y + region.height) {
      for (float* p : planes) std::fill(p, p + input_width, 0.0f);
      continue;
    }
    for (float* p : planes) {
      std::fill(p, p + region.x, 0.0f);
      std::fill(p + region.x + region.width, p + input_width, 0.0f);
    }
    const uint8_t* src = rgb + 3 * (row + region.x);
    float* r = planes[0] + region.x;
    float* g = planes[1] + region.x;
    float* b = planes[2] + region.x;
    for (int x = 0; x < region.width; ++x) {
      r[x] = src[3 * x] * scale[0] + shift[0];
      g[x] = src[3 * x + 1] * scale[1] + shift[1];
      b[x] = src[3 * x + 2] * scale[2] + shift[2];
    }
  }
}

void Normalize(const uint8_t* rgb, const ContentRegion& region, int input_width,
               int input_height, const std::array<float, 3>& mean,
               const std::array<float, 3>& std, float* out) {
  NormalizeRows(rgb, region, input_width, input_height, mean, std, out, 0,
                input_height);
}

ContentRegion PreprocessBytes(const cv::Mat& rgb,
                              const PreprocessOptions& options, uint8_t* out) {
  const ContentRegion region = PlaceImage(rgb.cols, rgb.rows, options);
  ResizeInto(rgb, region, options.width, options.height, out);
  return region;
}

ContentRegion Preprocess(const cv::Mat& rgb, const PreprocessOptions& options,
                         float* out) {
  std::vector<uint8_t> bytes(size_t(options.width) * options.height * 3);
  const ContentRegion region = PreprocessBytes(rgb, options, bytes.data());
  Normalize(bytes.data(), region, options.width, options.height, options.mean,
            options.std, out);
  return region;
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
