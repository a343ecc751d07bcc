#include "datasets/confusion.h"

#include <gtest/gtest.h>

#include <cmath>

namespace segserve {
namespace {

TEST(ConfusionMatrixTest, IouAccumulatesIntersectionAndUnionOverImages) {
  ConfusionMatrix confusion(3);
  // Image 1: truth 0 0 1 1, predicted 0 1 1 1.
  const cv::Mat truth1 = (cv::Mat_<uint8_t>(1, 4) << 0, 0, 1, 1);
  const cv::Mat predicted1 = (cv::Mat_<uint8_t>(1, 4) << 0, 1, 1, 1);
  ASSERT_TRUE(confusion.Add(predicted1, truth1).ok());
  // Image 2: truth 1 1, predicted 1 1.
  const cv::Mat truth2 = (cv::Mat_<uint8_t>(1, 2) << 1, 1);
  ASSERT_TRUE(confusion.Add(truth2, truth2).ok());
  EXPECT_DOUBLE_EQ(confusion.Iou(0), 1.0 / 2.0);  // I 1, U 2.
  EXPECT_DOUBLE_EQ(confusion.Iou(1), 4.0 / 5.0);  // I 4, U 5.
  EXPECT_TRUE(std::isnan(confusion.Iou(2)));      // Absent everywhere.
  EXPECT_DOUBLE_EQ(confusion.MeanIou(), (0.5 + 0.8) / 2);
  EXPECT_DOUBLE_EQ(confusion.PixelAccuracy(), 5.0 / 6.0);
}

TEST(ConfusionMatrixTest, ForegroundIouMergesTheObjectClasses) {
  ConfusionMatrix confusion(3);
  // Objects 1 and 2 swapped but placed right; one object pixel missed.
  const cv::Mat truth = (cv::Mat_<uint8_t>(1, 5) << 0, 1, 2, 2, 0);
  const cv::Mat predicted = (cv::Mat_<uint8_t>(1, 5) << 0, 2, 1, 0, 0);
  ASSERT_TRUE(confusion.Add(predicted, truth).ok());
  EXPECT_DOUBLE_EQ(confusion.ForegroundIou(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(confusion.Iou(1), 0.0);
}

TEST(ConfusionMatrixTest, IgnoresTheIgnoreLabelInTheTruth) {
  ConfusionMatrix confusion(2);
  const cv::Mat truth = (cv::Mat_<uint8_t>(1, 3) << 0, 255, 1);
  const cv::Mat predicted = (cv::Mat_<uint8_t>(1, 3) << 0, 1, 1);
  ASSERT_TRUE(confusion.Add(predicted, truth).ok());
  EXPECT_DOUBLE_EQ(confusion.MeanIou(), 1.0);
}

TEST(ConfusionMatrixTest, RefusesMismatchedOrOutOfRangeLabels) {
  ConfusionMatrix confusion(2);
  const absl::Status size =
      confusion.Add(cv::Mat::zeros(2, 2, CV_8U), cv::Mat::zeros(2, 3, CV_8U));
  EXPECT_EQ(size.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(size.message().find("2x2"), std::string::npos) << size;
  const cv::Mat truth = (cv::Mat_<uint8_t>(1, 2) << 0, 1);
  const cv::Mat predicted = (cv::Mat_<uint8_t>(1, 2) << 0, 7);
  const absl::Status range = confusion.Add(predicted, truth);
  EXPECT_EQ(range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(range.message().find("label 7"), std::string::npos) << range;
}

TEST(ConfusionMatrixTest, MergeAddsCounts) {
  ConfusionMatrix a(2);
  ConfusionMatrix b(2);
  const cv::Mat ones = cv::Mat::ones(2, 2, CV_8U);
  ASSERT_TRUE(a.Add(ones, ones).ok());
  ASSERT_TRUE(b.Add(cv::Mat::zeros(2, 2, CV_8U), ones).ok());
  a.Merge(b);
  EXPECT_EQ(a.Count(1, 1), 4);
  EXPECT_EQ(a.Count(1, 0), 4);
  EXPECT_DOUBLE_EQ(a.Iou(1), 0.5);
}

}  // namespace
}  // namespace segserve
