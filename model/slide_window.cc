#include "model/slide_window.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

// Tile positions along one axis (mmsegmentation's h_grids / w_grids).
int GridCount(int size, int crop, int stride) {
  return std::max(size - crop + stride - 1, 0) / stride + 1;
}

}  // namespace

std::vector<SlideTile> PlanSlideTiles(int image_width, int image_height,
                                      const PreprocessOptions& options) {
  const int rows =
      GridCount(image_height, options.crop_height, options.stride_height);
  const int cols =
      GridCount(image_width, options.crop_width, options.stride_width);
  std::vector<SlideTile> tiles;
  tiles.reserve(size_t(rows) * cols);
  for (int row = 0; row < rows; ++row) {
    for (int col = 0; col < cols; ++col) {
      const int y2 = std::min(row * options.stride_height + options.crop_height,
                              image_height);
      const int x2 = std::min(col * options.stride_width + options.crop_width,
                              image_width);
      const int y1 = std::max(y2 - options.crop_height, 0);
      const int x1 = std::max(x2 - options.crop_width, 0);
      tiles.push_back({x1, y1, x2 - x1, y2 - y1});
    }
  }
  return tiles;
}

int CountSlideTiles(int image_width, int image_height,
                    const PreprocessOptions& options) {
  return GridCount(image_height, options.crop_height, options.stride_height) *
         GridCount(image_width, options.crop_width, options.stride_width);
}

ContentRegion PreprocessTile(const cv::Mat& rgb, const SlideTile& tile,
                             const PreprocessOptions& options, uint8_t* out) {
  // A tile of a full crop fills the input; a shorter one (the image is
  // smaller than the crop) keeps the same scale and is padded.
  ContentRegion region{0, 0, options.width, options.height};
  if (tile.width != options.crop_width) {
    region.width =
        std::clamp(int(std::lround(double(tile.width) * options.width /
                                   options.crop_width)),
                   1, options.width);
  }
  if (tile.height != options.crop_height) {
    region.height =
        std::clamp(int(std::lround(double(tile.height) * options.height /
                                   options.crop_height)),
                   1, options.height);
  }
  const cv::Mat pixels = rgb(cv::Rect(tile.x, tile.y, tile.width, tile.height));
  ResizeInto(pixels, region, options.width, options.height, out);
  return region;
}

SlideBlender::SlideBlender(int image_width, int image_height, int num_classes)
    : width_(image_width), height_(image_height), num_classes_(num_classes) {
  const int dims[] = {num_classes_, height_, width_};
  absl::MutexLock lock(&mu_);
  sum_ = cv::Mat(3, dims, CV_32F, cv::Scalar(0));
  count_ = cv::Mat(height_, width_, CV_32S, cv::Scalar(0));
}

absl::Status SlideBlender::Add(const SlideTile& tile,
                               const ContentRegion& region,
                               const cv::Mat& logits) {
  if (logits.type() != CV_32F || logits.dims != 3 ||
      logits.size[0] != num_classes_ || !logits.isContinuous()) {
    return absl::InternalError(absl::StrCat(
        "a tile's logits are not ", num_classes_,
        " planes of 32-bit floats (the model returned no logits?)"));
  }
  const int input_height = logits.size[1];
  const int input_width = logits.size[2];
  if (region.x < 0 || region.y < 0 || region.x + region.width > input_width ||
      region.y + region.height > input_height || tile.x < 0 || tile.y < 0 ||
      tile.x + tile.width > width_ || tile.y + tile.height > height_) {
    return absl::InternalError(
        "a tile or its region lies outside the image or the model input");
  }
  const cv::Rect content(region.x, region.y, region.width, region.height);
  const cv::Rect target(tile.x, tile.y, tile.width, tile.height);
  absl::MutexLock lock(&mu_);
  cv::Mat resized;
  for (int c = 0; c < num_classes_; ++c) {
    const cv::Mat plane(input_height, input_width, CV_32F,
                        const_cast<float*>(logits.ptr<float>(c)));
    cv::Mat tile_logits = plane(content);
    if (tile_logits.size() != target.size()) {
      cv::resize(tile_logits, resized, target.size(), 0, 0, cv::INTER_LINEAR);
      tile_logits = resized;
    }
    cv::Mat sum_plane(height_, width_, CV_32F, sum_.ptr<float>(c));
    cv::Mat sum_tile = sum_plane(target);
    sum_tile += tile_logits;
  }
  cv::Mat count_tile = count_(target);
  count_tile += 1;
  return absl::OkStatus();
}

void SlideBlender::AverageLocked() {
  if (averaged_) return;
  averaged_ = true;
  const size_t plane = size_t(height_) * width_;
  const int32_t* count = count_.ptr<int32_t>();
  for (int c = 0; c < num_classes_; ++c) {
    float* sum = sum_.ptr<float>(c);
    for (size_t i = 0; i < plane; ++i) {
      if (count[i] > 1) sum[i] /= float(count[i]);
    }
  }
}

BlendedMasks SlideBlender::Finish(bool with_confidence) {
  absl::MutexLock lock(&mu_);
  AverageLocked();
  BlendedMasks masks;
  const bool wide = num_classes_ > 256;
  masks.labels = cv::Mat(height_, width_, wide ? CV_16UC1 : CV_8UC1);
  if (with_confidence) masks.confidence = cv::Mat(height_, width_, CV_8UC1);
  const size_t plane = size_t(height_) * width_;
  const float* logits = sum_.ptr<float>();
  for (size_t i = 0; i < plane; ++i) {
    int best = 0;
    float best_logit = logits[i];
    for (int c = 1; c < num_classes_; ++c) {
      const float value = logits[c * plane + i];
      if (value > best_logit) {
        best_logit = value;
        best = c;
      }
    }
    if (wide) {
      masks.labels.ptr<uint16_t>()[i] = uint16_t(best);
    } else {
      masks.labels.ptr<uint8_t>()[i] = uint8_t(best);
    }
    if (with_confidence) {
      // The winner's softmax probability: 1 / sum(exp(l - max)).
      float total = 0;
      for (int c = 0; c < num_classes_; ++c) {
        total += std::exp(logits[c * plane + i] - best_logit);
      }
      masks.confidence.ptr<uint8_t>()[i] =
          uint8_t(std::clamp(std::lround(255.0f / total), long(0), long(255)));
    }
  }
  return masks;
}

cv::Mat SlideBlender::AveragedLogits() {
  absl::MutexLock lock(&mu_);
  AverageLocked();
  return sum_.clone();
}

}  // namespace segserve
