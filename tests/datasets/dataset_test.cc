#include "datasets/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "datasets/scene.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "tests/server/test_files.h"

namespace segserve {
namespace {

namespace fs = std::filesystem;

class FolderDatasetTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = FreshTestDir("folder_dataset");
    fs::create_directories(root_ / "images");
    fs::create_directories(root_ / "masks");
    std::ofstream(root_ / "classes.txt") << "background\nthing\n";
  }
  void WriteImage(const std::string& name, int width, int height) {
    cv::imwrite((root_ / "images" / name).string(),
                cv::Mat(height, width, CV_8UC3, cv::Scalar(10, 20, 30)));
  }
  void WriteMask(const std::string& name, int width, int height,
                 uint8_t value) {
    cv::imwrite((root_ / "masks" / name).string(),
                cv::Mat(height, width, CV_8U, cv::Scalar(value)));
  }
  absl::Status Open() { return OpenFolderDataset(root_.string()).status(); }

  fs::path root_;
};

TEST_F(FolderDatasetTest, ReadsWellFormedPairs) {
  WriteImage("a.png", 8, 6);
  WriteMask("a.png", 8, 6, 1);
  WriteImage("b.jpg", 4, 4);
  WriteMask("b.png", 4, 4, 255);
  absl::StatusOr<std::unique_ptr<LabeledImageSource>> dataset =
      OpenFolderDataset(root_.string());
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ((*dataset)->size(), 2);
  EXPECT_EQ((*dataset)->class_names().size(), 2u);
  absl::StatusOr<LabeledImage> a = (*dataset)->Get(0);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name, "a");
  EXPECT_EQ(a->rgb.size(), cv::Size(8, 6));
  EXPECT_EQ(a->rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(30, 20, 10)) << "RGB order";
  EXPECT_EQ(a->labels.at<uint8_t>(0, 0), 1);
}

TEST_F(FolderDatasetTest, MissingMaskNamesTheImage) {
  WriteImage("lonely.png", 4, 4);
  const absl::Status status = Open();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("lonely.png: has no mask"), std::string::npos)
      << status;
}

TEST_F(FolderDatasetTest, SizeMismatchNamesTheMask) {
  WriteImage("a.png", 8, 6);
  WriteMask("a.png", 6, 8, 0);
  const absl::Status status = Open();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("masks/a.png: mask is 6x8 but its image"),
            std::string::npos)
      << status;
}

TEST_F(FolderDatasetTest, ClassIdOutOfRangeNamesTheMaskAndTheRange) {
  WriteImage("a.png", 4, 4);
  WriteMask("a.png", 4, 4, 2);
  const absl::Status status = Open();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("masks/a.png: class id 2 is out of range"),
            std::string::npos)
      << status;
  EXPECT_NE(status.message().find("0..1"), std::string::npos) << status;
}

TEST_F(FolderDatasetTest, MaskWithoutImageAndMissingPartsAreNamed) {
  WriteMask("orphan.png", 4, 4, 0);
  WriteImage("a.png", 4, 4);
  WriteMask("a.png", 4, 4, 0);
  EXPECT_NE(Open().message().find("orphan.png: mask without an image"),
            std::string::npos);
  fs::remove(root_ / "classes.txt");
  EXPECT_EQ(Open().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(OpenFolderDataset((root_ / "nope").string()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SceneSourceTest, GivesTheSceneOfSeedBasePlusIndex) {
  const std::unique_ptr<LabeledImageSource> source = MakeSceneSource(100);
  EXPECT_EQ(source->size(), 0);
  absl::StatusOr<LabeledImage> image = source->Get(5);
  ASSERT_TRUE(image.ok());
  const Scene scene = DrawScene(105);
  EXPECT_EQ(cv::norm(image->labels, scene.labels, cv::NORM_INF), 0);
  EXPECT_EQ(image->rgb.size(), scene.rgb.size());
  if (scene.jpeg_quality == 0) {
    EXPECT_EQ(cv::norm(image->rgb, scene.rgb, cv::NORM_INF), 0);
  }
}

TEST(SceneSourceTest, DrawsTheNoisyVariantForItsShareOfSeeds) {
  int noisy = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    noisy += DrawsNoiseOverObjects(seed, 0.5);
    EXPECT_FALSE(DrawsNoiseOverObjects(seed, 0));
    EXPECT_TRUE(DrawsNoiseOverObjects(seed, 1));
  }
  EXPECT_NEAR(noisy, 1000, 100);

  const std::unique_ptr<LabeledImageSource> source = MakeSceneSource(100, 0.5);
  for (int64_t index = 0; index < 8; ++index) {
    absl::StatusOr<LabeledImage> image = source->Get(index);
    ASSERT_TRUE(image.ok());
    const uint64_t seed = 100 + static_cast<uint64_t>(index);
    const Scene scene = DrawScene(
        seed, {.noise_over_objects = DrawsNoiseOverObjects(seed, 0.5)});
    EXPECT_EQ(cv::norm(image->labels, scene.labels, cv::NORM_INF), 0);
    if (scene.jpeg_quality == 0) {
      EXPECT_EQ(cv::norm(image->rgb, scene.rgb, cv::NORM_INF), 0);
    }
    EXPECT_EQ(image->name.find("(noisy)") != std::string::npos,
              DrawsNoiseOverObjects(seed, 0.5));
  }
}

}  // namespace
}  // namespace segserve
