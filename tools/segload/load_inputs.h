#ifndef SEGSERVE_TOOLS_SEGLOAD_LOAD_INPUTS_H_
#define SEGSERVE_TOOLS_SEGLOAD_LOAD_INPUTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "segserve/v1/segmentation.pb.h"
#include "tools/segload/load_parse.h"

namespace segserve {

// The requests segload sends, built once before the run.

// How images travel.
enum class SendAs {
  kFile,  // Files as they are; synthetic images as JPEG.
  kJpeg,  // Encoded as JPEG at the client (once, before the run).
  kPng,   // Encoded as PNG at the client.
  kRaw,   // Raw RGB8 pixels.
};

struct LoadInputOptions {
  // At most one of image and image_dir; neither: synthetic images of `sizes`.
  std::string image;
  std::string image_dir;
  std::vector<ImageDims> sizes = {{512, 512}};
  SendAs send = SendAs::kFile;
  int jpeg_quality = 90;
  uint64_t seed = 1;  // Of the synthetic scenes (datasets/scene.h).
  std::string model;  // Empty: the server's default.
  v1::MaskEncoding mask_encoding = v1::PNG;
};

// One distinct request, shared read-only by every call that sends it.
struct LoadInput {
  std::string name;  // File name, or "WxH" for a synthetic image.
  int width = 0;
  int height = 0;
  std::shared_ptr<const v1::SegmentRequest> request;
  size_t request_bytes = 0;  // Serialized size.
  // Protobuf serialization time of the request (the fastest of 3 tries).
  double serialize_us = 0;
};

// The JPEG, PNG, BMP, WebP and TIFF files (by extension, any case) directly
// in `dir`, sorted by name. NOT_FOUND when `dir` cannot be read or has none;
// INVALID_ARGUMENT above 10000 files.
absl::StatusOr<std::vector<std::string>> ListImageFiles(const std::string& dir);

// Builds the requests: reads and checks the files (NOT_FOUND when missing,
// INVALID_ARGUMENT when not a supported image), decodes and re-encodes them
// as `send` asks, or draws the synthetic images. The total serialized size
// must stay under 2 GiB. Thread-safe.
absl::StatusOr<std::vector<LoadInput>> BuildLoadInputs(
    const LoadInputOptions& options);

}  // namespace segserve

#endif  // SEGSERVE_TOOLS_SEGLOAD_LOAD_INPUTS_H_
