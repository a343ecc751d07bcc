#include "client/overlay.h"

#include <cstdlib>
#include <set>
#include <tuple>

#include "gtest/gtest.h"
#include "opencv2/core.hpp"

namespace segserve {
namespace {

int Distance(const cv::Vec3b& a, const cv::Vec3b& b) {
  return std::abs(a[0] - b[0]) + std::abs(a[1] - b[1]) + std::abs(a[2] - b[2]);
}

TEST(ClassColorTest, FixedAndDistinct) {
  EXPECT_EQ(ClassColor(7), ClassColor(7));
  std::set<std::tuple<int, int, int>> seen;
  for (int id = 0; id < 256; ++id) {
    const cv::Vec3b color = ClassColor(id);
    seen.insert({color[0], color[1], color[2]});
  }
  EXPECT_EQ(seen.size(), 256u);
  // Neighbouring ids, and any two of the first 40 ids, are far apart.
  for (int id = 0; id < 1000; ++id) {
    EXPECT_GE(Distance(ClassColor(id), ClassColor(id + 1)), 200) << id;
  }
  for (int a = 0; a < 40; ++a) {
    for (int b = a + 1; b < 40; ++b) {
      EXPECT_GE(Distance(ClassColor(a), ClassColor(b)), 60) << a << " " << b;
    }
  }
}

TEST(RenderOverlayTest, AlphaBlends) {
  const cv::Mat image(4, 6, CV_8UC3, cv::Scalar(100, 150, 200));
  cv::Mat labels(4, 6, CV_8UC1, cv::Scalar(0));
  labels.at<uint8_t>(1, 2) = 3;

  cv::Mat out = RenderOverlay(image, labels, 0.0f);
  ASSERT_EQ(out.type(), CV_8UC3);
  EXPECT_EQ(cv::norm(out, image, cv::NORM_INF), 0);

  out = RenderOverlay(image, labels, 1.0f);
  EXPECT_EQ(out.at<cv::Vec3b>(1, 2), ClassColor(3));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), ClassColor(0));

  out = RenderOverlay(image, labels, 0.5f);
  const cv::Vec3b color = ClassColor(3);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(out.at<cv::Vec3b>(1, 2)[c],
                (image.at<cv::Vec3b>(1, 2)[c] + color[c]) / 2.0, 1.0);
  }
}

TEST(RenderOverlayTest, SixteenBitAndResizedLabels) {
  const cv::Mat image(8, 8, CV_8UC3, cv::Scalar(0, 0, 0));
  cv::Mat labels(4, 4, CV_16UC1, cv::Scalar(1000));
  labels.at<uint16_t>(0, 0) = 2;
  const cv::Mat out = RenderOverlay(image, labels, 1.0f);
  ASSERT_EQ(out.size(), image.size());
  EXPECT_EQ(out.at<cv::Vec3b>(1, 1), ClassColor(2));
  EXPECT_EQ(out.at<cv::Vec3b>(7, 7), ClassColor(1000));
}

TEST(RenderOverlayTest, BadInputsGiveEmpty) {
  const cv::Mat image(2, 2, CV_8UC3);
  EXPECT_TRUE(RenderOverlay(cv::Mat(), cv::Mat(2, 2, CV_8UC1), 0.5f).empty());
  EXPECT_TRUE(RenderOverlay(image, cv::Mat(), 0.5f).empty());
  EXPECT_TRUE(RenderOverlay(image, cv::Mat(2, 2, CV_32SC1), 0.5f).empty());
  EXPECT_TRUE(
      RenderOverlay(cv::Mat(2, 2, CV_8UC1), cv::Mat(2, 2, CV_8UC1), 0.5f)
          .empty());
}

}  // namespace
}  // namespace segserve
