#include "train/augment.h"

#include <gtest/gtest.h>

#include <cmath>
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
    with_objects += cv::countNonZero((sample.labels != 0) &
                                     (sample.labels != kIgnoreLabel)) > 0;
  }
  EXPECT_GT(with_objects, 15);
}

// A STRETCH model's samples are letterboxed at the given share: a 4:1
// image then fills a quarter of the input and the rest is padding.
TEST(AugmentTest, LetterboxShareOfAStretchModelsSamples) {
  const Scene scene = DrawScene(13, {.width = 1024, .height = 256});
  const PreprocessOptions pre =
      Input(128, 128, PreprocessOptions::Resize::kStretch);
  AugmentOptions options;
  options.min_scale = options.max_scale = 1;
  auto padded_share = [&](double chance, uint64_t seed) {
    options.letterbox_chance = chance;
    const TrainingSample sample =
        MakeTrainingSample(scene.rgb, scene.labels, pre, options, true, seed);
    return cv::countNonZero(sample.labels == kIgnoreLabel) / (128.0 * 128.0);
  };
  EXPECT_EQ(padded_share(0, 1), 0);
  EXPECT_NEAR(padded_share(1, 1), 0.75, 0.01);
  int letterboxed = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    letterboxed += padded_share(0.5, seed) > 0.7;
  }
  EXPECT_GT(letterboxed, 10);
  EXPECT_LT(letterboxed, 30);
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

// The photometric steps change pixels, never labels or the geometry, and
// are drawn from the seed.
TEST(AugmentTest, PhotometricStepsChangePixelsNotLabels) {
  const Scene scene = DrawScene(3, {.width = 256, .height = 256});
  const PreprocessOptions pre =
      Input(128, 128, PreprocessOptions::Resize::kStretch);
  AugmentOptions plain;
  plain.horizontal_flip = plain.vertical_flip = false;
  plain.min_scale = plain.max_scale = 1;
  AugmentOptions photometric = plain;
  photometric.photometric = true;
  photometric.jitter_chance = photometric.blur_chance = 1;
  photometric.noise_chance = photometric.jpeg_chance = 1;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    const TrainingSample a =
        MakeTrainingSample(scene.rgb, scene.labels, pre, plain, true, seed);
    const TrainingSample b = MakeTrainingSample(scene.rgb, scene.labels, pre,
                                                photometric, true, seed);
    EXPECT_EQ(cv::norm(a.labels, b.labels, cv::NORM_INF), 0) << seed;
    double difference = 0;
    for (size_t i = 0; i < a.input.size(); ++i) {
      difference += std::abs(a.input[i] - b.input[i]);
    }
    // Noise of sigma >= 0 alone moves pixels; with jitter of every channel
    // the mean move is well above rounding.
    EXPECT_GT(difference / a.input.size(), 0.01) << seed;
    const TrainingSample again = MakeTrainingSample(
        scene.rgb, scene.labels, pre, photometric, true, seed);
    EXPECT_EQ(b.input, again.input) << seed;
  }
  // Noise over everything: the objects' flat interiors are flat no more.
  AugmentOptions noise_only = plain;
  noise_only.photometric = true;
  noise_only.jitter_chance = noise_only.blur_chance = 0;
  noise_only.jpeg_chance = 0;
  noise_only.noise_chance = 1;
  noise_only.max_noise_sigma = 40;
  int noisy_samples = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const TrainingSample flat =
        MakeTrainingSample(scene.rgb, scene.labels, pre, plain, true, seed);
    const TrainingSample noisy = MakeTrainingSample(
        scene.rgb, scene.labels, pre, noise_only, true, seed);
    int changed_object_pixels = 0;
    int object_pixels = 0;
    for (int i = 0; i < 128 * 128; ++i) {
      const uint8_t label = flat.labels.data[i];
      if (label == 0 || label == kIgnoreLabel) continue;
      ++object_pixels;
      changed_object_pixels += flat.input[i] != noisy.input[i];
    }
    ASSERT_GT(object_pixels, 100);
    noisy_samples += changed_object_pixels > object_pixels / 2;
  }
  // Sigma is drawn from 0..40: a few samples may get almost none.
  EXPECT_GE(noisy_samples, 8);
}

}  // namespace
}  // namespace segserve
