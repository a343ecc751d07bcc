// segdemo: draws synthetic scenes (datasets/scene.h), segments them through a
// running segserve and scores the masks against the scenes' exact labels.
//
//   segdemo --seed 3 --out_dir demo/        one scene: writes the input, the
//                                           mask and an overlay, prints IoU
//   segdemo --first_seed 0 --count 200 --min_miou 0.9 --min_class_iou 0.8
//                                           scores many scenes; exit 1 below
//                                           the thresholds (the gate tests)
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "client/overlay.h"
#include "client/request_util.h"
#include "datasets/confusion.h"
#include "datasets/scene.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "segserve address");
ABSL_FLAG(std::string, model, "", "model name; empty: the server's default");
ABSL_FLAG(uint64_t, seed, 0, "the scene of the demo");
ABSL_FLAG(std::string, out_dir, "",
          "demo: where scene.png|jpg, mask.png and overlay.png go");
ABSL_FLAG(uint64_t, first_seed, 0, "scoring: the first scene seed");
ABSL_FLAG(int, count, 0, "scoring: how many scenes (0: the demo instead)");
ABSL_FLAG(int, width, 0, "scene width (0: drawn from the seed, 256..1024)");
ABSL_FLAG(int, height, 0, "scene height (0: drawn from the seed)");
ABSL_FLAG(int, concurrency, 4, "scoring: calls in flight");
ABSL_FLAG(double, min_miou, 0, "scoring: fail below this mIoU");
ABSL_FLAG(double, min_class_iou, 0, "scoring: fail when a class is below");
ABSL_FLAG(double, min_foreground_iou, 0,
          "scoring: fail when objects (any class) against background is below");
ABSL_FLAG(int64_t, deadline_ms, 60000, "deadline of each call");

namespace segserve {
namespace {

namespace fs = std::filesystem;

struct Segmented {
  Scene scene;
  std::string encoded;
  cv::Mat mask;
};

absl::StatusOr<Segmented> SegmentScene(Client& client, uint64_t seed) {
  Segmented result;
  result.scene = DrawScene(seed, {.width = absl::GetFlag(FLAGS_width),
                                  .height = absl::GetFlag(FLAGS_height)});
  result.encoded = EncodeScene(result.scene);
  v1::SegmentRequest request = MakeEncodedRequest(result.encoded);
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_mask_encoding(v1::RLE);
  request.set_request_id(absl::StrCat("scene-", seed));
  absl::StatusOr<v1::SegmentResponse> response = client.Segment(request);
  if (!response.ok()) {
    return absl::Status(
        response.status().code(),
        absl::StrCat("scene ", seed, ": ", response.status().message()));
  }
  absl::StatusOr<cv::Mat> mask = DecodeMaskToMat(response->mask());
  if (!mask.ok()) return mask.status();
  if (mask->size() != result.scene.labels.size()) {
    return absl::InternalError(
        absl::StrCat("scene ", seed, ": the mask is ", mask->cols, "x",
                     mask->rows, " but the image is ", result.scene.labels.cols,
                     "x", result.scene.labels.rows));
  }
  result.mask = *std::move(mask);
  return result;
}

absl::Status Demo(Client& client) {
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<Segmented> segmented = SegmentScene(client, seed);
  if (!segmented.ok()) return segmented.status();
  const fs::path dir(absl::GetFlag(FLAGS_out_dir));
  fs::create_directories(dir);
  const fs::path input =
      dir / (segmented->scene.jpeg_quality > 0 ? "scene.jpg" : "scene.png");
  std::ofstream(input, std::ios::binary) << segmented->encoded;
  cv::Mat bgr;
  cv::cvtColor(segmented->scene.rgb, bgr, cv::COLOR_RGB2BGR);
  cv::imwrite((dir / "mask.png").string(), segmented->mask);
  cv::imwrite((dir / "overlay.png").string(),
              RenderOverlay(bgr, segmented->mask, 0.5f));
  ConfusionMatrix confusion(kNumSceneClasses);
  absl::Status added = confusion.Add(segmented->mask, segmented->scene.labels);
  if (!added.ok()) return added;
  std::cout << "scene " << seed << " (" << segmented->scene.rgb.cols << "x"
            << segmented->scene.rgb.rows << ", "
            << segmented->scene.objects.size() << " objects) -> "
            << input.string() << ", " << (dir / "mask.png").string() << ", "
            << (dir / "overlay.png").string() << "\n"
            << "IoU against the scene's exact labels (nan: class absent):\n"
            << confusion.Report(SceneClassNames());
  return absl::OkStatus();
}

absl::Status Score(Client& client) {
  const uint64_t first = absl::GetFlag(FLAGS_first_seed);
  const int count = absl::GetFlag(FLAGS_count);
  ConfusionMatrix total(kNumSceneClasses);
  absl::Mutex mutex;
  absl::Status failure;
  std::atomic<int> next{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < std::max(1, absl::GetFlag(FLAGS_concurrency)); ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        absl::StatusOr<Segmented> segmented =
            SegmentScene(client, first + static_cast<uint64_t>(i));
        ConfusionMatrix one(kNumSceneClasses);
        absl::Status status = segmented.status();
        if (status.ok()) {
          status = one.Add(segmented->mask, segmented->scene.labels);
        }
        absl::MutexLock lock(&mutex);
        if (!status.ok()) {
          if (failure.ok()) failure = status;
          continue;
        }
        total.Merge(one);
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  if (!failure.ok()) return failure;
  std::cout << "scenes " << first << ".." << first + count - 1 << " through "
            << absl::GetFlag(FLAGS_target) << " model '"
            << absl::GetFlag(FLAGS_model) << "':\n"
            << total.Report(SceneClassNames());
  const double min_miou = absl::GetFlag(FLAGS_min_miou);
  const double min_class = absl::GetFlag(FLAGS_min_class_iou);
  std::string below;
  if (total.MeanIou() < min_miou) {
    absl::StrAppendFormat(&below, " mIoU %.4f < %.2f;", total.MeanIou(),
                          min_miou);
  }
  const double min_foreground = absl::GetFlag(FLAGS_min_foreground_iou);
  if (total.ForegroundIou() < min_foreground) {
    absl::StrAppendFormat(&below, " foreground IoU %.4f < %.2f;",
                          total.ForegroundIou(), min_foreground);
  }
  for (int c = 0; c < kNumSceneClasses; ++c) {
    if (total.Iou(c) < min_class) {
      absl::StrAppendFormat(&below, " %s IoU %.4f < %.2f;",
                            SceneClassNames()[c], total.Iou(c), min_class);
    }
  }
  if (!below.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("below the gate:", below));
  }
  return absl::OkStatus();
}

absl::Status Run() {
  ClientOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.default_deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  if (!client.ok()) return client.status();
  if (absl::GetFlag(FLAGS_count) > 0) return Score(**client);
  if (absl::GetFlag(FLAGS_out_dir).empty()) {
    return absl::InvalidArgumentError(
        "give --out_dir for the demo or --count to score many scenes");
  }
  return Demo(**client);
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "segments synthetic scenes through segserve and scores the masks.\n"
      "  segdemo --seed 3 --out_dir demo/\n"
      "  segdemo --count 200 --min_miou 0.9 --min_class_iou 0.8");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = segserve::Run();
  if (!status.ok()) {
    std::cerr << "segdemo: " << status << "\n";
    return 1;
  }
  return 0;
}
