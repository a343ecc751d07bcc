// segscore: draws synthetic scenes (datasets/scene.h), segments them through
// a running segserve and scores the masks against the scenes' exact labels;
// exits 1 below the thresholds (the accuracy gates).
//
//   segscore --first_seed 0 --count 200 --min_miou 0.9 --min_class_iou 0.8
#include <algorithm>
#include <atomic>
#include <cstdint>
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
#include "common/status_macros.h"
#include "datasets/confusion.h"
#include "datasets/scene.h"
#include "opencv2/core.hpp"
#include "tools/scene_requests.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "segserve address");
ABSL_FLAG(std::string, model, "", "model name; empty: the server's default");
ABSL_FLAG(uint64_t, first_seed, 0, "the first scene seed");
ABSL_FLAG(int, count, 200, "how many scenes");
ABSL_FLAG(int, width, 0, "scene width (0: drawn from the seed, 256..1024)");
ABSL_FLAG(int, height, 0, "scene height (0: drawn from the seed)");
ABSL_FLAG(int, mosaic, 1,
          "above 1: N x N scenes side by side in one image (each --width x "
          "--height, default 512 x 512)");
ABSL_FLAG(bool, noise_over_objects, false,
          "the noisy variant: the scene's pixel noise over the objects too");
ABSL_FLAG(int, concurrency, 4, "calls in flight");
ABSL_FLAG(double, min_miou, 0, "fail below this mIoU");
ABSL_FLAG(double, min_class_iou, 0, "fail when a class is below");
ABSL_FLAG(double, min_foreground_iou, 0,
          "fail when objects (any class) against background is below");
ABSL_FLAG(int64_t, deadline_ms, 60000, "deadline of each call");
ABSL_FLAG(int, jpeg_quality, 0,
          "1..100: send every scene as a JPEG of this quality (0: PNG or JPEG "
          "as the scene's seed says)");
ABSL_FLAG(std::string, reference_target, "",
          "another segserve: segment every scene there too and report the "
          "share of pixels whose labels agree (e.g. one run with other "
          "flags)");

namespace segserve {
namespace {

// Pixels whose labels are equal in `a` and `b` (of the same size).
int64_t EqualPixels(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat equal;
  cv::compare(a, b, equal, cv::CMP_EQ);
  return cv::countNonZero(equal);
}

// `reference` may be null.
absl::Status Score(Client& client, Client* reference) {
  const uint64_t first = absl::GetFlag(FLAGS_first_seed);
  const int count = absl::GetFlag(FLAGS_count);
  ConfusionMatrix total(kNumSceneClasses);
  int64_t agreeing = 0;
  int64_t compared = 0;
  absl::Mutex mutex;
  absl::Status failure;
  std::atomic<int> next{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < std::max(1, absl::GetFlag(FLAGS_concurrency)); ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        absl::StatusOr<SegmentedScene> segmented = SegmentScene(
            client, absl::GetFlag(FLAGS_model),
            first + static_cast<uint64_t>(i),
            {.width = absl::GetFlag(FLAGS_width),
             .height = absl::GetFlag(FLAGS_height),
             .noise_over_objects = absl::GetFlag(FLAGS_noise_over_objects),
             .mosaic = absl::GetFlag(FLAGS_mosaic)},
            absl::GetFlag(FLAGS_jpeg_quality));
        ConfusionMatrix one(kNumSceneClasses);
        absl::Status status = segmented.status();
        if (status.ok()) {
          status = one.Add(segmented->mask, segmented->scene.labels);
        }
        int64_t equal = 0;
        if (status.ok() && reference != nullptr) {
          absl::StatusOr<cv::Mat> other = SegmentEncoded(
              *reference, absl::GetFlag(FLAGS_model), segmented->encoded,
              absl::StrCat("reference-scene-", first + uint64_t(i)));
          status = other.status();
          if (status.ok() && other->size() != segmented->mask.size()) {
            status =
                absl::InternalError("the reference's mask has another size");
          }
          if (status.ok()) equal = EqualPixels(segmented->mask, *other);
        }
        absl::MutexLock lock(&mutex);
        if (!status.ok()) {
          if (failure.ok()) failure = status;
          continue;
        }
        total.Merge(one);
        agreeing += equal;
        compared += int64_t(segmented->mask.total());
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  SEGSERVE_RETURN_IF_ERROR(failure);
  std::cout << "scenes " << first << ".." << first + count - 1 << " through "
            << absl::GetFlag(FLAGS_target) << " model '"
            << absl::GetFlag(FLAGS_model) << "':\n"
            << total.Report(SceneClassNames());
  if (reference != nullptr) {
    std::cout << absl::StrFormat(
        "agreement with %s: %.5f of %d pixels\n",
        absl::GetFlag(FLAGS_reference_target),
        double(agreeing) / double(std::max<int64_t>(compared, 1)), compared);
  }
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
  SEGSERVE_ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
                            Client::Create(options));
  if (absl::GetFlag(FLAGS_count) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--count is ", absl::GetFlag(FLAGS_count), "; score at least 1 scene"));
  }
  if (absl::GetFlag(FLAGS_mosaic) < 1 || absl::GetFlag(FLAGS_mosaic) > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mosaic is ", absl::GetFlag(FLAGS_mosaic),
                     "; allowed 1 (single scenes)..8"));
  }
  const int jpeg_quality = absl::GetFlag(FLAGS_jpeg_quality);
  if (jpeg_quality < 0 || jpeg_quality > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--jpeg_quality is ", jpeg_quality, "; allowed 0 (as drawn)..100"));
  }
  std::unique_ptr<Client> reference;
  if (!absl::GetFlag(FLAGS_reference_target).empty()) {
    options.target = absl::GetFlag(FLAGS_reference_target);
    SEGSERVE_ASSIGN_OR_RETURN(reference, Client::Create(options));
  }
  return Score(*client, reference.get());
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "scores the masks segserve returns for synthetic scenes.\n"
      "  segscore --count 200 --min_miou 0.9 --min_class_iou 0.8");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = segserve::Run();
  if (!status.ok()) {
    std::cerr << "segscore: " << status << "\n";
    return 1;
  }
  return 0;
}
