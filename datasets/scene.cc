#include "datasets/scene.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

constexpr double kPi = 3.14159265358979323846;

// SplitMix64: small, fast and the same on every platform, unlike the
// standard library's distributions.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(Next() >> 11) * 0x1.0p-53;
  }
  // Uniform integer in [lo, hi].
  int Int(int lo, int hi) {
    return lo + static_cast<int>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool Chance(double p) { return Uniform(0, 1) < p; }

 private:
  uint64_t state_;
};

struct Point {
  double x;
  double y;
};

cv::Vec3d RandomColor(Random& random) {
  return {std::floor(random.Uniform(0, 256)),
          std::floor(random.Uniform(0, 256)),
          std::floor(random.Uniform(0, 256))};
}

double MeanAbsDifference(const cv::Vec3d& a, const cv::Vec3d& b) {
  return (std::abs(a[0] - b[0]) + std::abs(a[1] - b[1]) +
          std::abs(a[2] - b[2])) /
         3.0;
}

// The background before noise: a linear gradient plus optional stripes.
struct Background {
  cv::Vec3d from;
  cv::Vec3d to;
  double dir_x = 1;  // Unit gradient direction.
  double dir_y = 0;
  double min_projection = 0;
  double projection_range = 1;
  double stripe_amplitude = 0;  // 0: no stripes.
  double stripe_period = 1;
  double stripe_dir_x = 1;
  double stripe_dir_y = 0;
  double stripe_phase = 0;

  cv::Vec3d ColorAt(double x, double y) const {
    const double t =
        (x * dir_x + y * dir_y - min_projection) / projection_range;
    cv::Vec3d color = from * (1 - t) + to * t;
    if (stripe_amplitude > 0) {
      const double s =
          stripe_amplitude *
          std::sin(2 * kPi * (x * stripe_dir_x + y * stripe_dir_y) /
                       stripe_period +
                   stripe_phase);
      color += cv::Vec3d(s, s, s);
    }
    return color;
  }
};

Background DrawBackgroundParameters(Random& random, int width, int height) {
  Background background;
  background.from = RandomColor(random);
  background.to = RandomColor(random);
  const double angle = random.Uniform(0, 2 * kPi);
  background.dir_x = std::cos(angle);
  background.dir_y = std::sin(angle);
  // Projections of the four corners span the gradient from 0 to 1.
  double lo = 1e18;
  double hi = -1e18;
  for (const Point corner :
       {Point{0, 0}, Point{1.0 * width, 0}, Point{0, 1.0 * height},
        Point{1.0 * width, 1.0 * height}}) {
    const double p = corner.x * background.dir_x + corner.y * background.dir_y;
    lo = std::min(lo, p);
    hi = std::max(hi, p);
  }
  background.min_projection = lo;
  background.projection_range = std::max(hi - lo, 1.0);
  if (random.Chance(0.5)) {
    background.stripe_amplitude = random.Uniform(1, 20);
    background.stripe_period = random.Uniform(6, 64);
    const double stripe_angle = random.Uniform(0, kPi);
    background.stripe_dir_x = std::cos(stripe_angle);
    background.stripe_dir_y = std::sin(stripe_angle);
    background.stripe_phase = random.Uniform(0, 2 * kPi);
  }
  return background;
}

// Exact inside tests in the object's own frame (centre at the origin,
// rotated by -angle).
class ShapeGeometry {
 public:
  ShapeGeometry(const SceneObject& object, Random& random) : object_(object) {
    const double radius = object.diameter / 2;
    switch (object.shape) {
      case kDisk:
        break;
      case kRectangle: {
        // Half sides a >= b with a / b in [1, 3] and a^2 + b^2 = radius^2.
        const double aspect = random.Uniform(1, 3);
        half_b_ = radius / std::sqrt(1 + aspect * aspect);
        half_a_ = aspect * half_b_;
        break;
      }
      case kTriangle: {
        // Interior angles >= 25 degrees; the vertices lie on the
        // circumscribed circle, at central angles twice the opposite angles.
        double a1 = 0;
        double a2 = 0;
        double a3 = 0;
        do {
          a1 = random.Uniform(25, 130);
          a2 = random.Uniform(25, 130);
          a3 = 180 - a1 - a2;
        } while (a3 < 25);
        const double degrees = kPi / 180;
        const double t0 = 0;
        const double t1 = t0 + 2 * a3 * degrees;
        const double t2 = t1 + 2 * a1 * degrees;
        vertices_ = {Point{radius * std::cos(t0), radius * std::sin(t0)},
                     Point{radius * std::cos(t1), radius * std::sin(t1)},
                     Point{radius * std::cos(t2), radius * std::sin(t2)}};
        break;
      }
      case kRing:
        inner_radius_ = radius * random.Uniform(0.4, 0.7);
        break;
      case kCross: {
        // Bars of length L and width w = f L; the bar ends' corners lie on
        // the circumscribed circle: (L/2)^2 + (w/2)^2 = radius^2.
        const double f = random.Uniform(0.2, 0.4);
        half_a_ = radius / std::sqrt(1 + f * f);
        half_b_ = f * half_a_;
        break;
      }
      case kBackground:
        break;
    }
    cos_ = std::cos(object.angle);
    sin_ = std::sin(object.angle);
  }

  bool Contains(double x, double y) const {
    const double dx = x - object_.center_x;
    const double dy = y - object_.center_y;
    const double radius = object_.diameter / 2;
    const double distance2 = dx * dx + dy * dy;
    if (distance2 > radius * radius) return false;
    const double u = dx * cos_ + dy * sin_;
    const double v = -dx * sin_ + dy * cos_;
    switch (object_.shape) {
      case kDisk:
        return true;
      case kRectangle:
        return std::abs(u) <= half_a_ && std::abs(v) <= half_b_;
      case kTriangle: {
        bool negative = false;
        bool positive = false;
        for (int i = 0; i < 3; ++i) {
          const Point& p = vertices_[i];
          const Point& q = vertices_[(i + 1) % 3];
          const double cross =
              (q.x - p.x) * (v - p.y) - (q.y - p.y) * (u - p.x);
          negative |= cross < 0;
          positive |= cross > 0;
        }
        return !(negative && positive);
      }
      case kRing:
        return distance2 > inner_radius_ * inner_radius_;
      case kCross:
        return (std::abs(u) <= half_a_ && std::abs(v) <= half_b_) ||
               (std::abs(u) <= half_b_ && std::abs(v) <= half_a_);
      case kBackground:
        break;
    }
    return false;
  }

 private:
  SceneObject object_;
  double cos_ = 1;
  double sin_ = 0;
  double half_a_ = 0;
  double half_b_ = 0;
  double inner_radius_ = 0;
  std::array<Point, 3> vertices_{};
};

// An object colour at least 50 levels (mean absolute difference) from the
// background under the centre and from every earlier object it may overlap,
// so that no edge of a label is invisible.
cv::Vec3d DrawObjectColor(Random& random, const cv::Vec3d& background,
                          const std::vector<SceneObject>& earlier,
                          const SceneObject& object) {
  constexpr double kMinDifference = 50;
  cv::Vec3d color;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    color = RandomColor(random);
    bool distinct = MeanAbsDifference(color, background) >= kMinDifference;
    for (const SceneObject& other : earlier) {
      if (!distinct) break;
      const double reach = (other.diameter + object.diameter) / 2;
      const double dx = other.center_x - object.center_x;
      const double dy = other.center_y - object.center_y;
      if (dx * dx + dy * dy > reach * reach) continue;
      const cv::Vec3d other_color(other.color[0], other.color[1],
                                  other.color[2]);
      distinct = MeanAbsDifference(color, other_color) >= kMinDifference;
    }
    if (distinct) return color;
  }
  // Unreachable in practice (1000 misses); the background rule still holds
  // for the complement colour.
  return cv::Vec3d(255, 255, 255) - background;
}

}  // namespace

const std::vector<std::string>& SceneClassNames() {
  static const auto* const kNames = new std::vector<std::string>{
      "background", "disk", "rectangle", "triangle", "ring", "cross"};
  return *kNames;
}

namespace {

Scene DrawMosaic(uint64_t seed, const SceneOptions& options) {
  const int side = options.mosaic;
  SceneOptions one = options;
  one.mosaic = 1;
  if (one.width <= 0) one.width = 512;
  if (one.height <= 0) one.height = 512;
  Scene mosaic;
  mosaic.seed = seed;
  mosaic.rgb = cv::Mat(one.height * side, one.width * side, CV_8UC3);
  mosaic.labels = cv::Mat(mosaic.rgb.size(), CV_8U);
  const uint64_t first = seed * uint64_t(side) * uint64_t(side);
  for (int row = 0; row < side; ++row) {
    for (int col = 0; col < side; ++col) {
      Scene scene = DrawScene(first + uint64_t(row) * side + col, one);
      const cv::Rect where(col * one.width, row * one.height, one.width,
                           one.height);
      scene.rgb.copyTo(mosaic.rgb(where));
      scene.labels.copyTo(mosaic.labels(where));
      for (SceneObject object : scene.objects) {
        object.center_x += where.x;
        object.center_y += where.y;
        mosaic.objects.push_back(object);
      }
    }
  }
  return mosaic;  // jpeg_quality 0: PNG.
}

}  // namespace

Scene DrawScene(uint64_t seed, const SceneOptions& options) {
  if (options.mosaic > 1) return DrawMosaic(seed, options);
  Random random(seed * 0x2545F4914F6CDD1Dull + 0x1234567ull);
  Scene scene;
  scene.seed = seed;
  const int width = options.width > 0 ? options.width : random.Int(256, 1024);
  const int height =
      options.height > 0 ? options.height : random.Int(256, 1024);

  const Background background = DrawBackgroundParameters(random, width, height);
  const double noise_sigma = random.Uniform(0, 12);
  const double blur_sigma = random.Chance(0.5) ? random.Uniform(0, 1.5) : 0;
  scene.jpeg_quality = random.Chance(0.5) ? random.Int(70, 95) : 0;

  // Background pixels (float, then noise, then objects overwrite).
  cv::Mat image(height, width, CV_32FC3);
  for (int y = 0; y < height; ++y) {
    auto* row = image.ptr<cv::Vec3f>(y);
    for (int x = 0; x < width; ++x) {
      const cv::Vec3d c = background.ColorAt(x + 0.5, y + 0.5);
      row[x] = cv::Vec3f(static_cast<float>(c[0]), static_cast<float>(c[1]),
                         static_cast<float>(c[2]));
    }
  }
  cv::Mat noise;
  if (noise_sigma > 0) {
    noise = cv::Mat(height, width, CV_32FC3);
    cv::RNG noise_random(random.Next());
    noise_random.fill(noise, cv::RNG::NORMAL, 0.0, noise_sigma);
    if (!options.noise_over_objects) image += noise;
  }
  scene.labels = cv::Mat::zeros(height, width, CV_8U);

  const int object_count = random.Int(1, 6);
  const double shorter = std::min(width, height);
  for (int i = 0; i < object_count; ++i) {
    SceneObject object;
    object.shape = static_cast<SceneClass>(random.Int(1, kNumSceneClasses - 1));
    object.diameter = shorter * random.Uniform(0.08, 0.45);
    object.center_x = random.Uniform(0, width);
    object.center_y = random.Uniform(0, height);
    object.angle = random.Uniform(0, 2 * kPi);
    const ShapeGeometry geometry(object, random);
    const cv::Vec3d color = DrawObjectColor(
        random, background.ColorAt(object.center_x, object.center_y),
        scene.objects, object);
    object.color = cv::Vec3b(static_cast<uint8_t>(color[0]),
                             static_cast<uint8_t>(color[1]),
                             static_cast<uint8_t>(color[2]));
    const cv::Vec3f fill(static_cast<float>(color[0]),
                         static_cast<float>(color[1]),
                         static_cast<float>(color[2]));
    const double radius = object.diameter / 2;
    const int x0 = std::max(0, static_cast<int>(object.center_x - radius) - 1);
    const int x1 =
        std::min(width - 1, static_cast<int>(object.center_x + radius) + 1);
    const int y0 = std::max(0, static_cast<int>(object.center_y - radius) - 1);
    const int y1 =
        std::min(height - 1, static_cast<int>(object.center_y + radius) + 1);
    for (int y = y0; y <= y1; ++y) {
      auto* pixels = image.ptr<cv::Vec3f>(y);
      uint8_t* labels = scene.labels.ptr<uint8_t>(y);
      for (int x = x0; x <= x1; ++x) {
        if (!geometry.Contains(x + 0.5, y + 0.5)) continue;
        pixels[x] = fill;
        labels[x] = object.shape;
      }
    }
    scene.objects.push_back(object);
  }

  if (options.noise_over_objects && !noise.empty()) image += noise;
  if (blur_sigma > 0) {
    cv::GaussianBlur(image, image, cv::Size(0, 0), blur_sigma);
  }
  image.convertTo(scene.rgb, CV_8UC3);  // Rounds and saturates.
  return scene;
}

std::string EncodeScene(const Scene& scene, bool force_png) {
  cv::Mat bgr;
  cv::cvtColor(scene.rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> bytes;
  if (force_png || scene.jpeg_quality == 0) {
    cv::imencode(".png", bgr, bytes, {cv::IMWRITE_PNG_COMPRESSION, 1});
  } else {
    cv::imencode(".jpg", bgr, bytes,
                 {cv::IMWRITE_JPEG_QUALITY, scene.jpeg_quality});
  }
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace segserve
