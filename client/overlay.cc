#include "client/overlay.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {

cv::Vec3b ClassColor(int class_id) {
  class_id = std::max(class_id, 0);
  // Golden-ratio hue steps spread any run of consecutive ids around the
  // circle; saturation alternates every id and brightness cycles through
  // three levels every two ids, which keeps the first 40 ids at least 69
  // apart (sum of absolute BGR differences), and neighbours at least 232.
  constexpr double kGoldenRatioConjugate = 0.6180339887498949;
  constexpr double kSaturation[] = {0.95, 0.6};
  constexpr double kValue[] = {1.0, 0.8, 0.6};
  const double hue = std::fmod(0.2 + class_id * kGoldenRatioConjugate, 1.0);
  const double saturation = kSaturation[class_id % 2];
  const double value = kValue[(class_id / 2) % 3];
  // HSV to RGB.
  const double h6 = hue * 6;
  const int sector = static_cast<int>(h6) % 6;
  const double f = h6 - std::floor(h6);
  const double p = value * (1 - saturation);
  const double q = value * (1 - saturation * f);
  const double t = value * (1 - saturation * (1 - f));
  double r = 0, g = 0, b = 0;
  switch (sector) {
    case 0:
      r = value, g = t, b = p;
      break;
    case 1:
      r = q, g = value, b = p;
      break;
    case 2:
      r = p, g = value, b = t;
      break;
    case 3:
      r = p, g = q, b = value;
      break;
    case 4:
      r = t, g = p, b = value;
      break;
    default:
      r = value, g = p, b = q;
      break;
  }
  auto to8 = [](double x) {
    return static_cast<uint8_t>(std::lround(std::clamp(x, 0.0, 1.0) * 255));
  };
  return cv::Vec3b(to8(b), to8(g), to8(r));
}

namespace {

template <typename T>
void Blend(const cv::Mat& image, const cv::Mat& labels,
           const std::vector<cv::Vec3b>& colors, float alpha, cv::Mat* out) {
  for (int y = 0; y < image.rows; ++y) {
    const cv::Vec3b* src = image.ptr<cv::Vec3b>(y);
    const T* label = labels.ptr<T>(y);
    cv::Vec3b* dst = out->ptr<cv::Vec3b>(y);
    for (int x = 0; x < image.cols; ++x) {
      const cv::Vec3b& color = colors[label[x]];
      for (int c = 0; c < 3; ++c) {
        dst[x][c] = cv::saturate_cast<uint8_t>((1 - alpha) * src[x][c] +
                                               alpha * color[c]);
      }
    }
  }
}

}  // namespace

cv::Mat RenderOverlay(const cv::Mat& bgr_image, const cv::Mat& labels,
                      float alpha) {
  if (bgr_image.empty() || labels.empty() || bgr_image.type() != CV_8UC3 ||
      (labels.type() != CV_8UC1 && labels.type() != CV_16UC1)) {
    return cv::Mat();
  }
  alpha = std::clamp(alpha, 0.0f, 1.0f);
  cv::Mat resized = labels;
  if (labels.size() != bgr_image.size()) {
    cv::resize(labels, resized, bgr_image.size(), 0, 0, cv::INTER_NEAREST);
  }
  double max_label = 0;
  cv::minMaxLoc(resized, nullptr, &max_label);
  std::vector<cv::Vec3b> colors(static_cast<size_t>(max_label) + 1);
  for (size_t id = 0; id < colors.size(); ++id) {
    colors[id] = ClassColor(static_cast<int>(id));
  }
  cv::Mat out(bgr_image.size(), CV_8UC3);
  if (resized.depth() == CV_8U) {
    Blend<uint8_t>(bgr_image, resized, colors, alpha, &out);
  } else {
    Blend<uint16_t>(bgr_image, resized, colors, alpha, &out);
  }
  return out;
}

}  // namespace segserve
