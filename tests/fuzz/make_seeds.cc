// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/):
// valid and nearly valid inputs for each, so that fuzzing starts from the
// formats it must get through. Run by scripts/fuzz.sh when a corpus is
// missing; its output is committed.
//
//   make_seeds OUT_DIR MODEL_REPOSITORY
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "inference/open_inference.pb.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "segserve/v1/segmentation.pb.h"

namespace fs = std::filesystem;

namespace {

void Write(const fs::path& dir, const std::string& name,
           const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string Encode(const std::string& ext, const cv::Mat& image) {
  std::vector<uchar> bytes;
  cv::imencode(ext, image, bytes);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: make_seeds OUT_DIR MODEL_REPOSITORY\n";
    return 2;
  }
  const fs::path out(argv[1]);
  cv::Mat color(6, 5, CV_8UC3);
  cv::randu(color, 0, 255);
  cv::Mat gray(4, 7, CV_8UC1, cv::Scalar(9));
  cv::Mat deep(3, 3, CV_16UC1, cv::Scalar(4000));

  std::vector<std::pair<std::string, std::string>> images = {
      {"color.png", Encode(".png", color)},
      {"gray.png", Encode(".png", gray)},
      {"deep.png", Encode(".png", deep)},
      {"color.jpg", Encode(".jpg", color)},
      {"color.bmp", Encode(".bmp", color)},
      {"color.webp", Encode(".webp", color)},
      {"color.tiff", Encode(".tiff", color)},
  };
  for (const auto& [name, bytes] : images) {
    Write(out / "image_header_fuzzer", name, bytes);
    segserve::v1::SegmentRequest request;
    request.set_model("scenes-sgcpnet");
    request.mutable_image()->set_encoded(bytes);
    request.set_mask_encoding(segserve::v1::RLE);
    Write(out / "segment_request_fuzzer", name + ".pb",
          request.SerializeAsString());
  }
  segserve::v1::SegmentRequest raw;
  raw.set_model_version("1");
  raw.set_include_confidence(true);
  raw.set_priority(1);
  raw.mutable_image()->mutable_raw()->set_width(5);
  raw.mutable_image()->mutable_raw()->set_height(6);
  raw.mutable_image()->mutable_raw()->set_format(segserve::v1::RGB8);
  raw.mutable_image()->mutable_raw()->set_data(std::string(
      reinterpret_cast<const char*>(color.data), color.total() * 3));
  Write(out / "segment_request_fuzzer", "raw_rgb.pb", raw.SerializeAsString());
  raw.mutable_image()->mutable_raw()->set_format(segserve::v1::GRAY8);
  Write(out / "segment_request_fuzzer", "raw_gray_wrong_size.pb",
        raw.SerializeAsString());

  // ModelInfer seeds: encoded images raw and as contents, a batch, pixels
  // raw and as contents, with outputs and parameters.
  {
    using inference::ModelInferRequest;
    auto bytes_request = [&](bool raw, int count) {
      ModelInferRequest request;
      request.set_model_name("scenes-sgcpnet");
      request.set_id("seed");
      auto* input = request.add_inputs();
      input->set_name("IMAGE");
      input->set_datatype("BYTES");
      input->add_shape(count);
      std::string packed;
      for (int i = 0; i < count; ++i) {
        const std::string& image = images[size_t(i) % images.size()].second;
        if (!raw) {
          input->mutable_contents()->add_bytes_contents(image);
          continue;
        }
        const uint32_t length = uint32_t(image.size());
        for (int b = 0; b < 4; ++b) packed.push_back(char(length >> (8 * b)));
        packed += image;
      }
      if (raw) request.add_raw_input_contents(packed);
      return request;
    };
    Write(out / "infer_request_fuzzer", "bytes_raw.pb",
          bytes_request(true, 1).SerializeAsString());
    Write(out / "infer_request_fuzzer", "bytes_contents.pb",
          bytes_request(false, 1).SerializeAsString());
    ModelInferRequest batch = bytes_request(true, 3);
    batch.add_outputs()->set_name("MASK");
    batch.add_outputs()->set_name("CONFIDENCE");
    batch.add_outputs()->set_name("CLASS_PIXELS");
    (*batch.mutable_parameters())["mask_encoding"].set_string_param("rle");
    (*batch.mutable_parameters())["priority"].set_int64_param(1);
    Write(out / "infer_request_fuzzer", "bytes_batch_outputs.pb",
          batch.SerializeAsString());
    ModelInferRequest pixels;
    auto* input = pixels.add_inputs();
    input->set_name("IMAGE");
    input->set_datatype("UINT8");
    for (int dim : {2, 6, 5, 3}) input->add_shape(dim);
    const std::string rgb(reinterpret_cast<const char*>(color.data),
                          color.total() * 3);
    pixels.add_raw_input_contents(rgb + rgb);
    Write(out / "infer_request_fuzzer", "uint8_raw.pb",
          pixels.SerializeAsString());
    pixels.clear_raw_input_contents();
    input->clear_shape();
    for (int dim : {6, 5, 3}) input->add_shape(dim);
    for (unsigned char value : rgb) {
      input->mutable_contents()->add_uint_contents(value);
    }
    pixels.add_outputs()->set_name("CLASS_PIXELS");
    Write(out / "infer_request_fuzzer", "uint8_contents.pb",
          pixels.SerializeAsString());
  }

  // Mask seeds: format byte, width-1, height-1, then the data.
  Write(out / "mask_codec_fuzzer", "rle",
        std::string("\x02\x03\x01\x05\x04\x00\x04", 7));
  Write(out / "mask_codec_fuzzer", "raw8",
        std::string("\x01\x01\x01\x01\x02\x03\x04", 7));
  Write(out / "mask_codec_fuzzer", "raw16",
        std::string("\x81\x00\x01\x01\x10\x02\x00", 7));
  Write(out / "mask_codec_fuzzer", "png",
        "\x00\x03\x06" + Encode(".png", gray));

  for (const auto& entry : fs::directory_iterator(argv[2])) {
    const fs::path config = entry.path() / "config.pbtxt";
    if (!fs::exists(config)) continue;
    std::ifstream in(config);
    const std::string text((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
    Write(out / "model_config_fuzzer", entry.path().filename().string(), text);
  }

  // REST infer bodies: a first byte, then two bytes of JSON length (used
  // when the first byte is odd), then the body.
  const std::string json_pixels =
      R"({"inputs":[{"name":"IMAGE","datatype":"UINT8","shape":[1,2,3],)"
      R"("data":[[[1,2,3],[4,5,6]]]}],"outputs":[{"name":"MASK"},)"
      R"({"name":"CLASS_PIXELS","parameters":{"binary_data":true}}]})";
  Write(out / "rest_infer_fuzzer", "json_pixels",
        std::string("\0\0\0", 3) + json_pixels);
  const std::string header =
      R"({"id":"a","parameters":{"mask_encoding":"png","binary_data_output")"
      R"(:true},"inputs":[{"name":"IMAGE","datatype":"BYTES","shape":[1],)"
      R"("parameters":{"binary_data_size":12}}]})";
  std::string binary = "\x01";
  binary.push_back(char(header.size() & 0xff));
  binary.push_back(char(header.size() >> 8));
  binary += header;
  binary += std::string("\x08\0\0\0", 4) + "\x89PNG\r\n\x1a\n";
  Write(out / "rest_infer_fuzzer", "binary_bytes", binary);
  Write(out / "rest_infer_fuzzer", "deep",
        std::string("\0\0\0", 3) + std::string(40, '[') + std::string(40, ']'));
  return 0;
}
