// segslide: runs a model directory's sliding-window inference in-process on
// one image, with the server's model loader and tiling (model/slide_window.h),
// and writes the blended logits and labels as raw files: what SLIDE serves,
// with the logits that the API does not return, for checking against a
// reference implementation and for inspecting a model's tiles.
//
//   segslide --model_dir DIR --image photo.png --logits logits.f32
//            [--labels labels.raw] [--threads 1]
//
// logits: float32, little-endian, classes x height x width. labels: uint8
// (uint16 above 256 classes), height x width. The model directory's input
// mode must be SLIDE; its weights are DIR/<highest version>/model.pt unless
// --weights names them.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/image_codec.h"
#include "common/status_macros.h"
#include "config/model_config.h"
#include "model/slide_window.h"
#include "model/torch_runtime.h"
#include "server/core/torch_loader.h"

ABSL_FLAG(std::string, model_dir, "", "model directory (config.pbtxt)");
ABSL_FLAG(std::string, weights, "",
          "weights (default: the highest version's model.pt)");
ABSL_FLAG(std::string, image, "", "the image (JPEG, PNG, BMP, WebP, TIFF)");
ABSL_FLAG(std::string, logits, "", "where the blended logits go");
ABSL_FLAG(std::string, labels, "", "where the labels go (optional)");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads");

namespace segserve {
namespace {

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

absl::Status WriteWhole(const std::string& path, const void* data,
                        size_t bytes) {
  std::ofstream file(path, std::ios::binary);
  file.write(static_cast<const char*>(data), std::streamsize(bytes));
  if (!file) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> WeightsPath(const std::string& model_dir) {
  if (!absl::GetFlag(FLAGS_weights).empty()) {
    return absl::GetFlag(FLAGS_weights);
  }
  std::string best;
  int64_t best_version = 0;
  for (const auto& entry : std::filesystem::directory_iterator(model_dir)) {
    int64_t version = 0;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && absl::SimpleAtoi(name, &version) &&
        version > best_version) {
      best_version = version;
      best = (entry.path() / "model.pt").string();
    }
  }
  if (best.empty()) {
    return absl::NotFoundError(
        absl::StrCat(model_dir, " has no version directory"));
  }
  return best;
}

absl::Status Run() {
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  if (model_dir.empty() || absl::GetFlag(FLAGS_image).empty() ||
      absl::GetFlag(FLAGS_logits).empty()) {
    return absl::InvalidArgumentError(
        "--model_dir, --image and --logits are required");
  }
  SEGSERVE_ASSIGN_OR_RETURN(v1::ModelConfig config, LoadModelConfig(model_dir));
  if (config.input().resize() != v1::ModelConfig::Input::SLIDE) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir, ": input.resize is not SLIDE"));
  }
  SEGSERVE_ASSIGN_OR_RETURN(std::string weights, WeightsPath(model_dir));
  SEGSERVE_ASSIGN_OR_RETURN(std::string encoded,
                            ReadWhole(absl::GetFlag(FLAGS_image)));
  SEGSERVE_ASSIGN_OR_RETURN(cv::Mat rgb, DecodeImage(encoded, 0));

  SetTorchThreads(std::max(1, absl::GetFlag(FLAGS_threads)));
  SEGSERVE_ASSIGN_OR_RETURN(std::unique_ptr<SegmentationModel> model,
                            TorchModelLoader()(config, weights, "cpu"));

  const PreprocessOptions preprocess = PreprocessOptionsFromConfig(config);
  const std::vector<SlideTile> tiles =
      PlanSlideTiles(rgb.cols, rgb.rows, preprocess);
  SlideBlender blender(rgb.cols, rgb.rows, int(config.num_classes()));
  const int batch = std::max(1, int(config.max_batch_size()));
  const size_t input_bytes = 3 * size_t(preprocess.height) * preprocess.width;
  const absl::Time start = absl::Now();
  for (size_t first = 0; first < tiles.size(); first += batch) {
    const size_t count = std::min(tiles.size() - first, size_t(batch));
    std::vector<std::vector<uint8_t>> pixels(count,
                                             std::vector<uint8_t>(input_bytes));
    std::vector<ModelInput> inputs;
    for (size_t i = 0; i < count; ++i) {
      inputs.push_back(
          {pixels[i].data(), PreprocessTile(rgb, tiles[first + i], preprocess,
                                            pixels[i].data())});
    }
    SEGSERVE_ASSIGN_OR_RETURN(std::vector<InferenceOutput> outputs,
                              model->Infer(inputs, {.logits = true}));
    for (size_t i = 0; i < count; ++i) {
      SEGSERVE_RETURN_IF_ERROR(
          blender.Add(tiles[first + i], inputs[i].region, outputs[i].logits));
    }
  }
  const cv::Mat logits = blender.AveragedLogits();
  SEGSERVE_RETURN_IF_ERROR(WriteWhole(absl::GetFlag(FLAGS_logits), logits.data,
                                      logits.total() * logits.elemSize()));
  if (!absl::GetFlag(FLAGS_labels).empty()) {
    const cv::Mat labels = blender.Finish(false).labels;
    SEGSERVE_RETURN_IF_ERROR(WriteWhole(absl::GetFlag(FLAGS_labels),
                                        labels.data,
                                        labels.total() * labels.elemSize()));
  }
  std::cout << rgb.cols << "x" << rgb.rows << " image, " << tiles.size()
            << " tiles of " << preprocess.crop_width << "x"
            << preprocess.crop_height << " (stride " << preprocess.stride_width
            << "x" << preprocess.stride_height << "), "
            << absl::ToDoubleMilliseconds(absl::Now() - start) << " ms\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "segslide --model_dir DIR --image IMG --logits OUT.f32 [--labels "
      "OUT.raw]: a SLIDE model's blended logits, in-process");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = segserve::Run();
  if (!status.ok()) {
    std::cerr << "segslide: " << status << "\n";
    return 1;
  }
  return 0;
}
