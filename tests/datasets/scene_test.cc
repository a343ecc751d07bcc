#include "datasets/scene.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/image_codec.h"
#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

bool SameMat(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() &&
         cv::norm(a, b, cv::NORM_INF) == 0;
}

TEST(SceneTest, SameSeedSameSceneOtherSeedOtherScene) {
  const Scene a = DrawScene(7);
  const Scene b = DrawScene(7);
  EXPECT_TRUE(SameMat(a.rgb, b.rgb));
  EXPECT_TRUE(SameMat(a.labels, b.labels));
  EXPECT_EQ(a.jpeg_quality, b.jpeg_quality);
  const Scene c = DrawScene(8);
  EXPECT_FALSE(SameMat(a.rgb, c.rgb) && SameMat(a.labels, c.labels));
}

TEST(SceneTest, SizesFollowTheRulesOrTheOptions) {
  std::set<int> widths;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const Scene scene = DrawScene(seed);
    EXPECT_GE(scene.rgb.cols, 256);
    EXPECT_LE(scene.rgb.cols, 1024);
    EXPECT_GE(scene.rgb.rows, 256);
    EXPECT_LE(scene.rgb.rows, 1024);
    EXPECT_EQ(scene.rgb.type(), CV_8UC3);
    EXPECT_EQ(scene.labels.type(), CV_8U);
    EXPECT_EQ(scene.labels.size(), scene.rgb.size());
    widths.insert(scene.rgb.cols);
  }
  EXPECT_GT(widths.size(), 20u) << "sizes are drawn, not fixed";
  const Scene fixed = DrawScene(3, {.width = 300, .height = 700});
  EXPECT_EQ(fixed.rgb.cols, 300);
  EXPECT_EQ(fixed.rgb.rows, 700);
}

TEST(SceneTest, ObjectsFollowTheDrawingRules) {
  std::set<int> shapes;
  int jpeg = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const Scene scene = DrawScene(seed);
    ASSERT_GE(scene.objects.size(), 1u);
    ASSERT_LE(scene.objects.size(), 6u);
    const double shorter = std::min(scene.rgb.cols, scene.rgb.rows);
    for (const SceneObject& object : scene.objects) {
      shapes.insert(object.shape);
      EXPECT_GE(object.diameter, 0.08 * shorter);
      EXPECT_LE(object.diameter, 0.45 * shorter);
      EXPECT_GE(object.center_x, 0);
      EXPECT_LT(object.center_x, scene.rgb.cols);
    }
    double max_label = 0;
    cv::minMaxLoc(scene.labels, nullptr, &max_label);
    EXPECT_LT(max_label, kNumSceneClasses);
    if (scene.jpeg_quality > 0) {
      ++jpeg;
      EXPECT_GE(scene.jpeg_quality, 70);
      EXPECT_LE(scene.jpeg_quality, 95);
    }
  }
  EXPECT_EQ(shapes.size(), 5u) << "every object class occurs";
  EXPECT_GT(jpeg, 50);
  EXPECT_LT(jpeg, 150);
}

// The last object drawn is on top: its centre pixel carries its class
// (unless it is a ring, whose centre is a hole, or an obtuse triangle,
// whose circumcentre lies outside it).
TEST(SceneTest, LabelsAreTheTopmostObjectsExactGeometry) {
  int checked = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    const Scene scene = DrawScene(seed);
    const SceneObject& top = scene.objects.back();
    const int x = static_cast<int>(top.center_x);
    const int y = static_cast<int>(top.center_y);
    const uint8_t label = scene.labels.at<uint8_t>(y, x);
    if (top.shape == kRing) {
      EXPECT_NE(label, kRing) << "seed " << seed << ": a ring's hole";
    } else if (top.shape != kTriangle && top.diameter > 20) {
      EXPECT_EQ(label, top.shape) << "seed " << seed;
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

TEST(SceneTest, DiskAreaMatchesItsRadius) {
  // Find single-disk scenes and compare the label area with pi r^2 (minus
  // what the border cuts off, so only disks fully inside count).
  int checked = 0;
  for (uint64_t seed = 0; seed < 400 && checked < 5; ++seed) {
    const Scene scene = DrawScene(seed);
    if (scene.objects.size() != 1 || scene.objects[0].shape != kDisk) continue;
    const SceneObject& disk = scene.objects[0];
    const double r = disk.diameter / 2;
    if (disk.center_x < r || disk.center_y < r ||
        disk.center_x + r > scene.rgb.cols ||
        disk.center_y + r > scene.rgb.rows) {
      continue;
    }
    const double area = cv::countNonZero(scene.labels == kDisk);
    EXPECT_NEAR(area / (M_PI * r * r), 1.0, 0.03) << "seed " << seed;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(SceneTest, ObjectColoursDifferFromTheBackgroundUnderTheirCentre) {
  // The pixel colour just inside an object's centre versus the background
  // far from any object is hard to get; instead check the drawn colour of
  // each object's centre pixel against its recorded colour (blur and noise
  // aside) and that labels and image agree on where objects are.
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const Scene scene = DrawScene(seed);
    const SceneObject& top = scene.objects.back();
    if (top.shape == kRing || top.shape == kTriangle || top.diameter < 30) {
      continue;
    }
    const cv::Vec3b pixel = scene.rgb.at<cv::Vec3b>(
        static_cast<int>(top.center_y), static_cast<int>(top.center_x));
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(pixel[c], top.color[c], 3) << "seed " << seed;
    }
  }
}

TEST(SceneTest, EncodesAsItsSeedSays) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const Scene scene = DrawScene(seed, {.width = 300, .height = 260});
    const std::string bytes = EncodeScene(scene);
    const bool is_jpeg = static_cast<uint8_t>(bytes[0]) == 0xFF;
    EXPECT_EQ(is_jpeg, scene.jpeg_quality > 0);
    absl::StatusOr<cv::Mat> decoded = DecodeImage(EncodeScene(scene, true), 0);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(SameMat(*decoded, scene.rgb)) << "PNG is lossless";
  }
}

TEST(SceneTest, NoisyVariantPutsTheSameNoiseOverTheSameObjects) {
  int noisier = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const Scene spec = DrawScene(seed, {.width = 320, .height = 256});
    const Scene noisy = DrawScene(
        seed, {.width = 320, .height = 256, .noise_over_objects = true});
    EXPECT_TRUE(SameMat(spec.labels, noisy.labels)) << seed;
    EXPECT_EQ(spec.jpeg_quality, noisy.jpeg_quality);
    ASSERT_EQ(spec.objects.size(), noisy.objects.size());
    for (size_t i = 0; i < spec.objects.size(); ++i) {
      EXPECT_EQ(spec.objects[i].color, noisy.objects[i].color);
    }
    // Each object pixel differs from its flat colour in the noisy variant.
    cv::Mat inside = spec.labels > 0;
    cv::erode(inside, inside, cv::Mat(), cv::Point(-1, -1), 3);
    cv::Mat difference;
    cv::absdiff(spec.rgb, noisy.rgb, difference);
    if (cv::mean(difference, inside)[0] > 1) ++noisier;
  }
  // Noise sigma is drawn from 0..12 per scene: most scenes get visible
  // noise on their objects.
  EXPECT_GE(noisier, 12);
}

TEST(SceneTest, ClassNamesAreTheSixSceneClasses) {
  EXPECT_THAT(SceneClassNames(),
              testing::ElementsAre("background", "disk", "rectangle",
                                   "triangle", "ring", "cross"));
}

}  // namespace
}  // namespace segserve
