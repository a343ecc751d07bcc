#include "tools/segload/load_inputs.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/request_util.h"
#include "common/image_codec.h"
#include "common/status_macros.h"
#include "datasets/scene.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace segserve {
namespace {

constexpr size_t kMaxFiles = 10000;
constexpr uint64_t kMaxTotalBytes = uint64_t{2} << 30;

bool IsImageName(const std::filesystem::path& path) {
  const std::string ext = absl::AsciiStrToLower(path.extension().string());
  for (const char* known :
       {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}) {
    if (ext == known) return true;
  }
  return false;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return bytes;
}

absl::StatusOr<std::string> Encode(const cv::Mat& rgb, SendAs send,
                                   int jpeg_quality) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> buffer;
  const bool png = send == SendAs::kPng;
  const bool ok = png ? cv::imencode(".png", bgr, buffer)
                      : cv::imencode(".jpg", bgr, buffer,
                                     {cv::IMWRITE_JPEG_QUALITY, jpeg_quality});
  if (!ok) {
    return absl::InternalError(
        absl::StrCat("OpenCV could not encode a ", rgb.cols, "x", rgb.rows,
                     " image as ", png ? "PNG" : "JPEG"));
  }
  return std::string(buffer.begin(), buffer.end());
}

// The request for `rgb` as `send` asks (kFile means JPEG here: there is no
// file).
absl::StatusOr<v1::SegmentRequest> RequestFromPixels(const cv::Mat& rgb,
                                                     SendAs send,
                                                     int jpeg_quality) {
  if (send == SendAs::kRaw) return MakeRawRequest(rgb, v1::RGB8);
  SEGSERVE_ASSIGN_OR_RETURN(std::string encoded,
                            Encode(rgb, send, jpeg_quality));
  return MakeEncodedRequest(std::move(encoded));
}

// The input for the file at `path`; its request goes to `request`.
absl::StatusOr<LoadInput> FileInput(const std::string& path,
                                    const LoadInputOptions& options,
                                    v1::SegmentRequest* request) {
  SEGSERVE_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  absl::StatusOr<ImageSize> size = PeekImageSize(bytes);
  if (!size.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     " is not a readable JPEG, PNG, BMP, WebP or TIFF "
                     "image: ",
                     size.status().message()));
  }
  LoadInput input;
  input.name = std::filesystem::path(path).filename().string();
  input.width = size->width;
  input.height = size->height;
  if (options.send == SendAs::kFile) {
    *request = MakeEncodedRequest(std::move(bytes));
  } else {
    absl::StatusOr<cv::Mat> rgb = DecodeImage(bytes, 0);
    if (!rgb.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot decode ", path, ": ", rgb.status().message()));
    }
    SEGSERVE_ASSIGN_OR_RETURN(
        *request, RequestFromPixels(*rgb, options.send, options.jpeg_quality));
  }
  return input;
}

absl::StatusOr<LoadInput> SyntheticInput(const ImageDims& dims, uint64_t seed,
                                         const LoadInputOptions& options,
                                         v1::SegmentRequest* request) {
  // The synthetic scenes the default models know (datasets/scene.h), so the
  // server does the work of real images: objects to find, not noise.
  const Scene scene =
      DrawScene(seed, {.width = dims.width, .height = dims.height});
  SEGSERVE_ASSIGN_OR_RETURN(*request, RequestFromPixels(scene.rgb, options.send,
                                                        options.jpeg_quality));
  LoadInput input;
  input.name = absl::StrCat(dims.width, "x", dims.height);
  input.width = dims.width;
  input.height = dims.height;
  return input;
}

// Fills the request's common fields, then the input's request, its size and
// serialization cost.
void Finish(const LoadInputOptions& options, v1::SegmentRequest request,
            LoadInput* input) {
  request.set_model(options.model);
  request.set_mask_encoding(options.mask_encoding);
  input->request_bytes = request.ByteSizeLong();
  double best_us = -1;
  std::string buffer;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    request.SerializeToString(&buffer);
    const double us = std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - start)
                          .count();
    if (best_us < 0 || us < best_us) best_us = us;
  }
  input->serialize_us = best_us;
  input->request =
      std::make_shared<const v1::SegmentRequest>(std::move(request));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ListImageFiles(
    const std::string& dir) {
  std::error_code error;
  std::filesystem::directory_iterator it(dir, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("cannot read directory ", dir, ": ", error.message()));
  }
  std::vector<std::string> files;
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
    if (error) break;
    if (!it->is_regular_file(error) || !IsImageName(it->path())) continue;
    files.push_back(it->path().string());
    if (files.size() > kMaxFiles) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, " has more than ", kMaxFiles, " images; use a smaller folder"));
    }
  }
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("cannot read directory ", dir, ": ", error.message()));
  }
  if (files.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no .jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff file in ", dir));
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<std::vector<LoadInput>> BuildLoadInputs(
    const LoadInputOptions& options) {
  if (!options.image.empty() && !options.image_dir.empty()) {
    return absl::InvalidArgumentError("give --image or --image_dir, not both");
  }
  std::vector<LoadInput> inputs;
  uint64_t total = 0;
  auto add = [&](absl::StatusOr<LoadInput> input,
                 v1::SegmentRequest request) -> absl::Status {
    if (!input.ok()) return input.status();
    Finish(options, std::move(request), &*input);
    total += input->request_bytes;
    inputs.push_back(std::move(*input));
    return absl::OkStatus();
  };
  if (!options.image.empty() || !options.image_dir.empty()) {
    std::vector<std::string> paths = {options.image};
    if (!options.image_dir.empty()) {
      SEGSERVE_ASSIGN_OR_RETURN(paths, ListImageFiles(options.image_dir));
    }
    for (const std::string& path : paths) {
      v1::SegmentRequest request;
      absl::StatusOr<LoadInput> input = FileInput(path, options, &request);
      SEGSERVE_RETURN_IF_ERROR(add(std::move(input), std::move(request)));
      if (total > kMaxTotalBytes) break;
    }
  } else {
    for (size_t i = 0; i < options.sizes.size(); ++i) {
      v1::SegmentRequest request;
      absl::StatusOr<LoadInput> input =
          SyntheticInput(options.sizes[i], options.seed + i, options, &request);
      SEGSERVE_RETURN_IF_ERROR(add(std::move(input), std::move(request)));
      if (total > kMaxTotalBytes) break;
    }
  }
  if (inputs.empty()) {
    return absl::InvalidArgumentError("no input image: give --sizes");
  }
  if (total > kMaxTotalBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the requests take ", total >> 20,
                     " MiB; keep the inputs under 2048 MiB"));
  }
  return inputs;
}

}  // namespace segserve
