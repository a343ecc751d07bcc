#include "train/augment.h"

#include <gtest/gtest.h>

#include <vector>

#include "datasets/scene.h"
#include "opencv2/core.hpp"

namespace segserve {
namespace {

PreprocessOptions Input(int width, int height,
                        PreprocessOptions::Resize resize) {
  PreprocessOptions options;
  options.width = width;
  options.height = height;
  options.resize = resize;
  return options;
}

TEST(AugmentTest, WithoutAugmentationTheInputIsWhatTheServerFeeds) {
  const Scene scene = DrawScene(11, {.width = 640, .height = 360});
  for (const auto resize : {PreprocessOptions::Resize::kStretch,
                            PreprocessOptions::Resize::kLetterbox}) {
    const PreprocessOptions pre = Input(128, 96, resize);
    const TrainingSample sample =
        MakeTrainingSample(scene.rgb, scene.labels, pre, {}, false, 0);
    std::vector<float> served(3 * 128 * 96);
    Preprocess(scene.rgb, pre, served.data());
    ASSERT_EQ(sample.input.size(), served.size());
    for (size_t i = 0; i < served.size(); ++i) {
      ASSERT_NEAR(sample.input[i], served[i], 1e-5) << i;
    }
    EXPECT_EQ(sample.labels.size(), cv::Size(128, 96));
  }
}

TEST(AugmentTest, LetterboxPaddingCarriesNoLabel) {
  const Scene scene = DrawScene(12, {.width = 800, .height = 400});
  const TrainingSample sample = MakeTrainingSample(
      scene.rgb, scene.labels,
      Input(100, 100, PreprocessOptions::Resize::kLetterbox), {}, false, 0);
  // The 2:1 image fills rows 25..74; the rest is padding.
  EXPECT_EQ(sample.labels.at<uint8_t>(0, 50), kIgnoreLabel);
  EXPECT_EQ(sample.labels.at<uint8_t>(99, 50), kIgnoreLabel);
  EXPECT_NE(sample.labels.at<uint8_t>(50, 50), kIgnoreLabel);
  EXPECT_EQ(sample.input[0], 0.0f) << "padding is zero after normalization";
}

TEST(AugmentTest, LabelsFollowThePixelsThroughScaleCropAndFlips) {
  // A scene whose objects have known colours: after augmentation, every
  // labelled object pixel away from edges has its object's colour.
  const Scene scene = DrawScene(5, {.width = 512, .height = 512});
  const PreprocessOptions pre =
      Input(256, 256, PreprocessOptions::Resize::kStretch);
  AugmentOptions options;
  options.crop_width = 96;
  options.crop_height = 96;
  int total_checked = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const TrainingSample sample =
        MakeTrainingSample(scene.rgb, scene.labels, pre, options, true, seed);
    ASSERT_EQ(sample.labels.size(), cv::Size(96, 96));
    ASSERT_EQ(sample.input.size(), 3u * 96 * 96);
    int checked = 0;
    int matching = 0;
    for (int y = 1; y < 95; ++y) {
      for (int x = 1; x < 95; ++x) {
        const uint8_t label = sample.labels.at<uint8_t>(y, x);
        if (label == kIgnoreLabel || label == 0) continue;
        // Only pixels inside a uniform 3x3 label block.
        bool uniform = true;
        for (int dy = -1; dy <= 1; ++dy) {
          for (int dx = -1; dx <= 1; ++dx) {
            uniform &= sample.labels.at<uint8_t>(y + dy, x + dx) == label;
          }
        }
        if (!uniform) continue;
        ++checked;
        const float r = sample.input[y * 96 + x] * pre.std[0] + pre.mean[0];
        for (const SceneObject& object : scene.objects) {
          if (object.shape == label && std::abs(r - object.color[0]) < 8) {
            ++matching;
            break;
          }
        }
      }
    }
    total_checked += checked;
    if (checked > 0) {
      EXPECT_GT(matching, 0.95 * checked) << "seed " << seed;
    }
  }
  EXPECT_GT(total_checked, 1000) << "the crops show objects to check";
}

TEST(AugmentTest, CropsShowObjectsWhenTheImageHasThem) {
  const Scene scene = DrawScene(21, {.width = 1000, .height = 1000});
  const PreprocessOptions pre =
      Input(512, 512, PreprocessOptions::Resize::kStretch);
  AugmentOptions options;
  options.crop_width = 128;
  options.crop_height = 128;
  int with_objects = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const TrainingSample sample =
        MakeTrainingSample(scene.rgb, scene.labels, pre, options, true, seed);
    with_objects += cv::countNonZero(sample.labels != 0 &
                                     sample.labels != kIgnoreLabel) > 0;
  }
  EXPECT_GT(with_objects, 15);
}

TEST(AugmentTest, SameSeedSameSample) {
  const Scene scene = DrawScene(2);
  const PreprocessOptions pre =
      Input(64, 64, PreprocessOptions::Resize::kStretch);
  const TrainingSample a =
      MakeTrainingSample(scene.rgb, scene.labels, pre, {}, true, 9);
  const TrainingSample b =
      MakeTrainingSample(scene.rgb, scene.labels, pre, {}, true, 9);
  EXPECT_EQ(a.input, b.input);
  EXPECT_EQ(cv::norm(a.labels, b.labels, cv::NORM_INF), 0);
}

}  // namespace
}  // namespace segserve
