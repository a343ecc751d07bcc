// Uses the installed segserve client SDK: headers, library and generated
// protos. Needs no server: the call to an unused port must fail cleanly.

#include <cstdio>
#include <memory>

#include "client/client.h"
#include "client/overlay.h"
#include "client/request_util.h"
#include "common/mask_codec.h"
#include "opencv2/core.hpp"
#include "segserve/v1/segmentation.pb.h"

int main() {
  segserve::ClientOptions options;
  options.target = "127.0.0.1:1";
  options.default_deadline_ms = 2000;
  options.retry_max_attempts = 1;
  absl::StatusOr<std::unique_ptr<segserve::Client>> client =
      segserve::Client::Create(options);
  if (!client.ok()) {
    std::printf("Create failed: %s\n", client.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<segserve::v1::ListModelsResponse> models =
      (*client)->ListModels();
  if (models.ok()) {
    std::printf("ListModels unexpectedly succeeded\n");
    return 1;
  }

  const cv::Mat labels(3, 4, CV_8UC1, cv::Scalar(2));
  absl::StatusOr<std::string> data =
      segserve::EncodeMask(labels, segserve::MaskFormat::kRle);
  segserve::v1::Mask mask;
  mask.set_width(4);
  mask.set_height(3);
  mask.set_encoding(segserve::v1::RLE);
  mask.set_data(*data);
  absl::StatusOr<cv::Mat> decoded = segserve::DecodeMaskToMat(mask);
  if (!decoded.ok() || decoded->at<uint8_t>(2, 3) != 2) {
    std::printf("mask round trip failed\n");
    return 1;
  }
  const cv::Mat overlay = segserve::RenderOverlay(
      cv::Mat(3, 4, CV_8UC3, cv::Scalar(0, 0, 0)), *decoded, 1.0f);
  if (overlay.at<cv::Vec3b>(0, 0) != segserve::ClassColor(2)) {
    std::printf("overlay failed\n");
    return 1;
  }
  std::printf("find_package consumer: ok (call without server: %s)\n",
              models.status().ToString().c_str());
  return 0;
}
