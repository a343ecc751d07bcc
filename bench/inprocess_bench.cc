// inprocess_bench: what a served model costs without gRPC, measured through
// the server's own code, for the serving benchmarks of `make bench`
// (bench/run_bench.py, BENCHMARKS.md).
//
//   inprocess_bench --model_dir model_repository/scenes-sgcpnet
//       [--version 1] [--batches 1:8] [--min_seconds 2] [--idle_ms 0]
//       [--codecs]
//
// Model mode (default): loads the version's weights with the server's loader
// (TorchModelLoader, the config's platform, architecture and input size),
// then for each batch size times SegmentationModel::Infer on preprocessed
// synthetic scenes: the forward pass, the logits resized to the input and
// the argmax, exactly what a model instance thread runs per batch. Each
// batch size runs two warm-up batches, then batches until --min_seconds have
// passed (at least 5), and reports the median batch time.
//
// Profile mode (--profile_batch N): loads the model the same way on this
// thread and prints, as a Markdown table on stdout, where one Infer of a
// batch of N goes, op by op (bench/op_profile.h), averaged over
// --profile_runs after two warm-up batches; what no ATen op covers
// (normalization, the fused mask pass, copies) is its own row.
//
// Codec mode (--codecs): per-megapixel costs of the per-request work around
// the model, on scenes of each --codec_sizes: JPEG (quality 90) and PNG
// decode, raw RGB8 intake, preprocessing to the model input, mapping labels
// to the image size, and PNG, RAW and RLE mask encoding.
//
// LibTorch threads and the caching allocator are set as segserve sets them
// by default. Prints one JSON object on stdout.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/op_profile.h"
#include "common/image_codec.h"
#include "common/mask_codec.h"
#include "common/status_macros.h"
#include "config/model_config.h"
#include "config/repository_layout.h"
#include "datasets/scene.h"
#include "model/cpu_allocator.h"
#include "model/preprocess.h"
#include "model/torch_model.h"
#include "model/torch_runtime.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "server/core/torch_loader.h"

ABSL_FLAG(std::string, model_dir, "model_repository/scenes-sgcpnet",
          "A model directory of a repository (config.pbtxt, N/model.pt).");
ABSL_FLAG(std::string, version, "",
          "The version to load; empty: the highest numbered one.");
ABSL_FLAG(std::string, batches, "",
          "Batch sizes, 'A:B' or 'a,b,c'; empty: 1 to max_batch_size.");
ABSL_FLAG(double, min_seconds, 2, "Least timed seconds per batch size.");
ABSL_FLAG(double, idle_ms, 0,
          "Pause between timed batches, in ms (untimed): a served model "
          "idles between requests at low load.");
ABSL_FLAG(int, intra_op_threads, 0,
          "LibTorch intra-op threads (0: one per core, as segserve).");
ABSL_FLAG(bool, codecs, false, "Time the codecs instead of the model.");
ABSL_FLAG(bool, fused_mask_upsampling, true,
          "As segserve's flag: labels from the low-resolution logits in one "
          "pass (false: upsample the logits, then take the argmax).");
ABSL_FLAG(int, profile_batch, 0,
          "Profile one batch size op by op instead of timing (0: off).");
ABSL_FLAG(int, profile_runs, 10, "Profiled batches (--profile_batch).");
ABSL_FLAG(std::string, codec_sizes, "512x512,1024x1024",
          "Scene sizes for --codecs, WxH, comma-separated.");

namespace segserve {
namespace {

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

struct Timing {
  double median_s = 0;
  double mean_s = 0;
};

// Median and mean seconds of `run` over at least 5 runs and `min_seconds`
// in all, after `warmups` untimed runs, with `idle` between runs.
Timing TimeRuns(const std::function<void()>& run, double min_seconds,
                int warmups = 1, absl::Duration idle = absl::ZeroDuration()) {
  for (int i = 0; i < warmups; ++i) run();
  std::vector<double> times;
  double total = 0;
  while (times.size() < 5 || total < min_seconds) {
    absl::SleepFor(idle);
    const auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
    total += times.back();
  }
  return {Median(times), total / times.size()};
}

absl::StatusOr<std::vector<int>> BatchSizes(const std::string& text,
                                            int max_batch_size) {
  std::vector<int> sizes;
  if (text.empty()) {
    for (int b = 1; b <= max_batch_size; ++b) sizes.push_back(b);
    return sizes;
  }
  const std::vector<std::string> range = absl::StrSplit(text, ':');
  int first, last;
  if (range.size() == 2 && absl::SimpleAtoi(range[0], &first) &&
      absl::SimpleAtoi(range[1], &last) && first >= 1 && first <= last) {
    for (int b = first; b <= last; ++b) sizes.push_back(b);
    return sizes;
  }
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int b;
    if (!absl::SimpleAtoi(part, &b) || b < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--batches: '", text, "' is not 'A:B' or a list of sizes >= 1"));
    }
    sizes.push_back(b);
  }
  return sizes;
}

TorchLoaderOptions LoaderOptions() {
  return {.fused_mask_upsampling = absl::GetFlag(FLAGS_fused_mask_upsampling)};
}

// The highest version, or --version.
absl::StatusOr<int64_t> VersionToLoad(const std::string& model_dir) {
  int64_t version = 0;
  if (const std::string flag = absl::GetFlag(FLAGS_version); !flag.empty()) {
    if (!absl::SimpleAtoi(flag, &version) || version <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--version=", flag, " is not a positive integer"));
    }
    return version;
  }
  SEGSERVE_ASSIGN_OR_RETURN(std::vector<int64_t> versions,
                            ListModelVersions(model_dir));
  return versions.back();
}

// `count` distinct scenes resized to the model's input, as a model instance
// thread receives them (the model normalizes them).
struct SceneInputs {
  std::vector<std::vector<uint8_t>> pixels;
  std::vector<ModelInput> inputs;
};
SceneInputs MakeSceneInputs(const v1::ModelConfig& config, int count) {
  const PreprocessOptions preprocess = PreprocessOptionsFromConfig(config);
  const size_t input_bytes = 3 * size_t(preprocess.height) * preprocess.width;
  SceneInputs scenes;
  scenes.pixels.resize(count);
  for (int i = 0; i < count; ++i) {
    scenes.pixels[i].resize(input_bytes);
    const Scene scene = DrawScene(
        1 + i, {.width = preprocess.width, .height = preprocess.height});
    scenes.inputs.push_back(
        {scenes.pixels[i].data(),
         PreprocessBytes(scene.rgb, preprocess, scenes.pixels[i].data())});
  }
  return scenes;
}

absl::Status RunProfile(const std::string& model_dir, int batch) {
  SEGSERVE_ASSIGN_OR_RETURN(v1::ModelConfig config, LoadModelConfig(model_dir));
  SEGSERVE_ASSIGN_OR_RETURN(int64_t version, VersionToLoad(model_dir));
  SEGSERVE_ASSIGN_OR_RETURN(std::unique_ptr<SegmentationModel> model,
                            LoadTorchModel(TorchModelOptionsFor(
                                config, ModelWeightsPath(model_dir, version),
                                "cpu", LoaderOptions())));
  const SceneInputs scenes = MakeSceneInputs(config, batch);
  const auto infer = [&]() -> absl::Status {
    return model->Infer(scenes.inputs, {}).status();
  };
  for (int i = 0; i < 2; ++i) SEGSERVE_RETURN_IF_ERROR(infer());
  const int runs = std::max(1, absl::GetFlag(FLAGS_profile_runs));
  double wall = 0;
  std::vector<OpRow> rows;
  {
    OpProfile profile;
    for (int i = 0; i < runs; ++i) {
      const auto start = std::chrono::steady_clock::now();
      SEGSERVE_RETURN_IF_ERROR(infer());
      wall += std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                            start)
                  .count();
    }
    rows = profile.Rows();
  }
  double covered = 0;
  for (const OpRow& row : rows) covered += row.seconds;
  absl::PrintF(
      "%s, batch %d, %s, fused mask upsampling %s: %.2f ms a batch "
      "(mean of %d)\n\n",
      config.name(), batch, TorchRuntimeSummary(),
      absl::GetFlag(FLAGS_fused_mask_upsampling) ? "on" : "off",
      wall / runs * 1e3, runs);
  absl::PrintF(
      "| op | arguments | calls a batch | ms a batch | share | GFLOP/s |\n"
      "|---|---|---|---|---|---|\n");
  const auto print = [&](const std::string& op, const std::string& details,
                         double calls, double seconds, int64_t macs) {
    absl::PrintF("| %s | %s | %.0f | %.3f | %.1f%% | %s |\n", op, details,
                 calls / runs, seconds / runs * 1e3, 100 * seconds / wall,
                 macs > 0 ? absl::StrFormat("%.1f", 2e-9 * macs / seconds)
                          : std::string());
  };
  for (const OpRow& row : rows) {
    print(row.op, row.details, row.calls, row.seconds, row.macs);
  }
  print("(outside ATen ops)", "normalization, fused mask pass, copies", runs,
        wall - covered, 0);
  return absl::OkStatus();
}

absl::Status RunModel(const std::string& model_dir) {
  SEGSERVE_ASSIGN_OR_RETURN(v1::ModelConfig config, LoadModelConfig(model_dir));
  SEGSERVE_ASSIGN_OR_RETURN(int64_t version, VersionToLoad(model_dir));
  const std::string weights = ModelWeightsPath(model_dir, version);
  SEGSERVE_ASSIGN_OR_RETURN(
      std::unique_ptr<SegmentationModel> model,
      TorchModelLoader(LoaderOptions())(config, weights, "cpu"));
  const int max_batch = std::max<int>(1, int(config.max_batch_size()));
  SEGSERVE_ASSIGN_OR_RETURN(
      std::vector<int> batches,
      BatchSizes(absl::GetFlag(FLAGS_batches), max_batch));

  // Distinct scenes, resized once: the timed part starts where a model
  // instance thread starts, with the batch's inputs ready.
  const PreprocessOptions preprocess = PreprocessOptionsFromConfig(config);
  const SceneInputs scenes = MakeSceneInputs(
      config, *std::max_element(batches.begin(), batches.end()));
  const std::vector<ModelInput>& inputs = scenes.inputs;

  std::vector<std::string> rows;
  for (int batch : batches) {
    const absl::Span<const ModelInput> batch_inputs(inputs.data(), batch);
    absl::Status failed;
    const Timing timing = TimeRuns(
        [&] {
          auto outputs = model->Infer(batch_inputs, {});
          if (!outputs.ok()) failed = outputs.status();
        },
        absl::GetFlag(FLAGS_min_seconds), /*warmups=*/2,
        absl::Milliseconds(absl::GetFlag(FLAGS_idle_ms)));
    SEGSERVE_RETURN_IF_ERROR(failed);
    const double seconds = timing.median_s;
    // The server reports mean times per request; the mean is kept for
    // comparisons with them.
    rows.push_back(absl::StrFormat(
        R"({"batch": %d, "batch_ms": %.4f, "batch_ms_mean": %.4f, )"
        R"("images_per_s": %.4f})",
        batch, seconds * 1e3, timing.mean_s * 1e3, batch / seconds));
    std::fprintf(stderr, "batch %d: %.2f ms, %.2f images/s\n", batch,
                 seconds * 1e3, batch / seconds);
  }
  absl::PrintF(
      "{\"model\": \"%s\", \"version\": \"%d\", \"input\": \"%dx%d\", "
      "\"runtime\": \"%s\", \"batches\": [%s]}\n",
      config.name(), version, preprocess.width, preprocess.height,
      TorchRuntimeSummary(), absl::StrJoin(rows, ", "));
  return absl::OkStatus();
}

absl::Status RunCodecs(const std::string& model_dir) {
  SEGSERVE_ASSIGN_OR_RETURN(v1::ModelConfig config, LoadModelConfig(model_dir));
  const PreprocessOptions preprocess = PreprocessOptionsFromConfig(config);
  const double min_seconds = absl::GetFlag(FLAGS_min_seconds) / 4;
  std::vector<std::string> rows;
  for (absl::string_view size : absl::StrSplit(absl::GetFlag(FLAGS_codec_sizes),
                                               ',', absl::SkipEmpty())) {
    int width, height;
    const std::vector<std::string> sides = absl::StrSplit(size, 'x');
    if (sides.size() != 2 || !absl::SimpleAtoi(sides[0], &width) ||
        !absl::SimpleAtoi(sides[1], &height) || width < 1 || height < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--codec_sizes: '", size, "' is not WxH"));
    }
    const Scene scene = DrawScene(7, {.width = width, .height = height});
    cv::Mat bgr;
    cv::cvtColor(scene.rgb, bgr, cv::COLOR_RGB2BGR);
    std::vector<uchar> jpeg, png;
    cv::imencode(".jpg", bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, 90});
    cv::imencode(".png", bgr, png);
    const absl::string_view jpeg_bytes(reinterpret_cast<char*>(jpeg.data()),
                                       jpeg.size());
    const absl::string_view png_bytes(reinterpret_cast<char*>(png.data()),
                                      png.size());
    const absl::string_view raw_bytes(
        reinterpret_cast<const char*>(scene.rgb.data), scene.rgb.total() * 3);
    std::vector<uint8_t> input(3 * size_t(preprocess.height) *
                               preprocess.width);
    cv::Mat model_labels;
    cv::resize(scene.labels, model_labels,
               cv::Size(preprocess.width, preprocess.height), 0, 0,
               cv::INTER_NEAREST);
    const ContentRegion region{0, 0, preprocess.width, preprocess.height};

    const std::vector<std::pair<std::string, std::function<void()>>> steps = {
        {"decode_jpeg", [&] { (void)DecodeImage(jpeg_bytes, 0); }},
        {"decode_png", [&] { (void)DecodeImage(png_bytes, 0); }},
        {"raw_rgb8",
         [&] {
           (void)RawToRgb(width, height, PixelFormat::kRgb8, raw_bytes, 0);
         }},
        {"preprocess",
         [&] { (void)PreprocessBytes(scene.rgb, preprocess, input.data()); }},
        {"map_labels",
         [&] { (void)MapToImageSize(model_labels, region, width, height); }},
        {"encode_png",
         [&] { (void)EncodeMask(scene.labels, MaskFormat::kPng); }},
        {"encode_raw",
         [&] { (void)EncodeMask(scene.labels, MaskFormat::kRaw); }},
        {"encode_rle",
         [&] { (void)EncodeMask(scene.labels, MaskFormat::kRle); }},
    };
    const double megapixels = width * double(height) / 1e6;
    for (const auto& [name, run] : steps) {
      const double seconds = TimeRuns(run, min_seconds).median_s;
      rows.push_back(absl::StrFormat(
          R"({"step": "%s", "size": "%dx%d", "ms": %.4f, "ms_per_mp": %.4f})",
          name, width, height, seconds * 1e3, seconds * 1e3 / megapixels));
      std::fprintf(stderr, "%s %dx%d: %.3f ms (%.3f ms/MP)\n", name.c_str(),
                   width, height, seconds * 1e3, seconds * 1e3 / megapixels);
    }
    SEGSERVE_ASSIGN_OR_RETURN(const std::string mask_png,
                              EncodeMask(scene.labels, MaskFormat::kPng));
    SEGSERVE_ASSIGN_OR_RETURN(const std::string mask_rle,
                              EncodeMask(scene.labels, MaskFormat::kRle));
    rows.push_back(absl::StrFormat(
        R"({"step": "bytes", "size": "%dx%d", "jpeg": %d, "png": %d, )"
        R"("mask_png": %d, "mask_rle": %d})",
        width, height, jpeg.size(), png.size(), mask_png.size(),
        mask_rle.size()));
  }
  absl::PrintF("{\"codecs\": [%s]}\n", absl::StrJoin(rows, ", "));
  return absl::OkStatus();
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Times a served model (or the request codecs) without gRPC.\n"
      "Usage: inprocess_bench --model_dir DIR [--batches 1:8] [--codecs]");
  absl::ParseCommandLine(argc, argv);
  segserve::SetTorchThreads(absl::GetFlag(FLAGS_intra_op_threads));
  segserve::InstallCachingCpuAllocator(int64_t{2048} << 20);
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  const int profile_batch = absl::GetFlag(FLAGS_profile_batch);
  const absl::Status status =
      absl::GetFlag(FLAGS_codecs) ? segserve::RunCodecs(model_dir)
      : profile_batch > 0 ? segserve::RunProfile(model_dir, profile_batch)
                          : segserve::RunModel(model_dir);
  if (!status.ok()) {
    std::fprintf(stderr, "inprocess_bench: %s\n",
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
