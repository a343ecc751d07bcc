// segdemo: draws one synthetic scene (datasets/scene.h), segments it through
// a running segserve and writes the input, the mask and an overlay, with the
// IoU against the scene's exact labels. Scoring many scenes against a bar is
// segscore's job.
//
//   segdemo --seed 3 --out_dir demo/
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "client/overlay.h"
#include "common/status_macros.h"
#include "datasets/confusion.h"
#include "datasets/scene.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "tools/scene_requests.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "segserve address");
ABSL_FLAG(std::string, model, "", "model name; empty: the server's default");
ABSL_FLAG(uint64_t, seed, 0, "the scene");
ABSL_FLAG(std::string, out_dir, "",
          "where scene.png|jpg, mask.png and overlay.png go");
ABSL_FLAG(int, width, 0, "scene width (0: drawn from the seed, 256..1024)");
ABSL_FLAG(int, height, 0, "scene height (0: drawn from the seed)");
ABSL_FLAG(int, mosaic, 1,
          "above 1: N x N scenes side by side in one image (each --width x "
          "--height, default 512 x 512)");
ABSL_FLAG(bool, noise_over_objects, false,
          "the noisy variant: the scene's pixel noise over the objects too");
ABSL_FLAG(int64_t, deadline_ms, 60000, "deadline of the call");

namespace segserve {
namespace {

namespace fs = std::filesystem;

absl::Status Demo(Client& client) {
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  SEGSERVE_ASSIGN_OR_RETURN(
      SegmentedScene segmented,
      SegmentScene(
          client, absl::GetFlag(FLAGS_model), seed,
          {.width = absl::GetFlag(FLAGS_width),
           .height = absl::GetFlag(FLAGS_height),
           .noise_over_objects = absl::GetFlag(FLAGS_noise_over_objects),
           .mosaic = absl::GetFlag(FLAGS_mosaic)}));
  const fs::path dir(absl::GetFlag(FLAGS_out_dir));
  fs::create_directories(dir);
  const fs::path input =
      dir / (segmented.scene.jpeg_quality > 0 ? "scene.jpg" : "scene.png");
  std::ofstream(input, std::ios::binary) << segmented.encoded;
  cv::Mat bgr;
  cv::cvtColor(segmented.scene.rgb, bgr, cv::COLOR_RGB2BGR);
  cv::imwrite((dir / "mask.png").string(), segmented.mask);
  cv::imwrite((dir / "overlay.png").string(),
              RenderOverlay(bgr, segmented.mask, 0.5f));
  ConfusionMatrix confusion(kNumSceneClasses);
  SEGSERVE_RETURN_IF_ERROR(
      confusion.Add(segmented.mask, segmented.scene.labels));
  std::cout << "scene " << seed << " (" << segmented.scene.rgb.cols << "x"
            << segmented.scene.rgb.rows << ", "
            << segmented.scene.objects.size() << " objects) -> "
            << input.string() << ", " << (dir / "mask.png").string() << ", "
            << (dir / "overlay.png").string() << "\n"
            << "IoU against the scene's exact labels (nan: class absent):\n"
            << confusion.Report(SceneClassNames());
  return absl::OkStatus();
}

absl::Status Run() {
  if (absl::GetFlag(FLAGS_out_dir).empty()) {
    return absl::InvalidArgumentError(
        "give --out_dir for the demo's files (segscore scores many scenes)");
  }
  ClientOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.default_deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
  SEGSERVE_ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
                            Client::Create(options));
  return Demo(*client);
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "segments one synthetic scene through segserve and writes the input, "
      "the mask and an overlay.\n"
      "  segdemo --seed 3 --out_dir demo/");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = segserve::Run();
  if (!status.ok()) {
    std::cerr << "segdemo: " << status << "\n";
    return 1;
  }
  return 0;
}
