// A stand-in segserve for testing segclient and segload without the real
// server (no models, no LibTorch). Segment decodes the image with the common
// codec and answers a mask of its size with three vertical stripes of classes
// 0 ("sky"), 1 ("road") and 2 ("car"); model "missing" gives NOT_FOUND.
//
//   fake_segserve --port_file F [--max_seconds N]   serve on 127.0.0.1:<any>
//   fake_segserve --write_image F --width W --height H   write a test JPEG
//   fake_segserve --describe F   print "WxH depth=D channels=C" of an image

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/image_codec.h"
#include "common/mask_codec.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "segserve/v1/segmentation.grpc.pb.h"

ABSL_FLAG(std::string, port_file, "", "Serve, and write the port here.");
ABSL_FLAG(int, max_seconds, 120, "Stop serving after this long.");
ABSL_FLAG(std::string, write_image, "", "Write a test JPEG here and exit.");
ABSL_FLAG(int, width, 97, "Test image width.");
ABSL_FLAG(int, height, 61, "Test image height.");
ABSL_FLAG(std::string, describe, "", "Describe an image file and exit.");

namespace segserve {
namespace {

constexpr const char* kNames[] = {"sky", "road", "car"};

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

PixelFormat ToPixelFormat(v1::PixelFormat format) {
  switch (format) {
    case v1::BGR8:
      return PixelFormat::kBgr8;
    case v1::GRAY8:
      return PixelFormat::kGray8;
    default:
      return PixelFormat::kRgb8;
  }
}

class FakeSegmentation final : public v1::Segmentation::Service {
 public:
  grpc::Status Segment(grpc::ServerContext*, const v1::SegmentRequest* request,
                       v1::SegmentResponse* response) override {
    return Answer(*request, response);
  }

  grpc::Status SegmentStream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::SegmentResponse, v1::SegmentRequest>* stream)
      override {
    v1::SegmentRequest request;
    while (stream->Read(&request)) {
      v1::SegmentResponse response;
      if (grpc::Status s = Answer(request, &response); !s.ok()) return s;
      stream->Write(response);
    }
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* response) override {
    *response->add_models() = Info();
    return grpc::Status::OK;
  }

  grpc::Status GetModel(grpc::ServerContext*, const v1::GetModelRequest*,
                        v1::ModelInfo* response) override {
    *response = Info();
    return grpc::Status::OK;
  }

 private:
  static v1::ModelInfo Info() {
    v1::ModelInfo info;
    info.set_name("fake");
    info.set_version("1");
    info.set_state(v1::READY);
    for (const char* name : kNames) info.add_class_names(name);
    return info;
  }

  static grpc::Status Answer(const v1::SegmentRequest& request,
                             v1::SegmentResponse* response) {
    if (request.model() == "missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "model 'missing' not found; available: fake");
    }
    const v1::Image& image = request.image();
    absl::StatusOr<cv::Mat> rgb =
        image.has_raw() ? RawToRgb(static_cast<int>(image.raw().width()),
                                   static_cast<int>(image.raw().height()),
                                   ToPixelFormat(image.raw().format()),
                                   image.raw().data(), 0)
                        : DecodeImage(image.encoded(), 0);
    if (!rgb.ok()) return ToGrpc(rgb.status());
    cv::Mat labels(rgb->rows, rgb->cols, CV_8UC1);
    uint64_t pixels[3] = {0, 0, 0};
    for (int y = 0; y < labels.rows; ++y) {
      for (int x = 0; x < labels.cols; ++x) {
        const int id = x * 3 / labels.cols;
        labels.at<uint8_t>(y, x) = static_cast<uint8_t>(id);
        ++pixels[id];
      }
    }
    const v1::MaskEncoding encoding = request.mask_encoding();
    const MaskFormat format = encoding == v1::RAW   ? MaskFormat::kRaw
                              : encoding == v1::RLE ? MaskFormat::kRle
                                                    : MaskFormat::kPng;
    absl::StatusOr<std::string> data = EncodeMask(labels, format);
    if (!data.ok()) return ToGrpc(data.status());
    response->set_request_id(request.request_id());
    response->set_model("fake");
    response->set_model_version("1");
    v1::Mask* mask = response->mutable_mask();
    mask->set_width(labels.cols);
    mask->set_height(labels.rows);
    mask->set_encoding(encoding);
    mask->set_data(std::move(*data));
    if (request.include_confidence()) {
      mask->set_confidence(std::string(labels.total(), '\xc8'));
    }
    for (int id = 0; id < 3; ++id) {
      if (pixels[id] == 0) continue;
      v1::ClassStat* stat = response->add_class_stats();
      stat->set_class_id(id);
      stat->set_name(kNames[id]);
      stat->set_pixels(pixels[id]);
    }
    v1::Timing* timing = response->mutable_timing();
    timing->set_queue_us(10);
    timing->set_preprocess_us(20);
    timing->set_inference_us(30);
    timing->set_postprocess_us(40);
    timing->set_batch_size(1);
    return grpc::Status::OK;
  }
};

int Serve(const std::string& port_file) {
  FakeSegmentation service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "fake_segserve: cannot listen\n");
    return 1;
  }
  {
    // Written whole, then renamed, so a reader never sees a partial port.
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  std::this_thread::sleep_for(
      std::chrono::seconds(absl::GetFlag(FLAGS_max_seconds)));
  server->Shutdown();
  return 0;
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (const std::string path = absl::GetFlag(FLAGS_write_image);
      !path.empty()) {
    cv::Mat bgr(absl::GetFlag(FLAGS_height), absl::GetFlag(FLAGS_width),
                CV_8UC3);
    cv::randu(bgr, 0, 256);
    return cv::imwrite(path, bgr) ? 0 : 1;
  }
  if (const std::string path = absl::GetFlag(FLAGS_describe); !path.empty()) {
    const cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
    if (image.empty()) return 1;
    std::printf("%dx%d depth=%d channels=%d\n", image.cols, image.rows,
                image.depth() == CV_16U ? 16 : 8, image.channels());
    return 0;
  }
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    return segserve::Serve(path);
  }
  std::fprintf(stderr,
               "fake_segserve: give --port_file, --write_image or "
               "--describe\n");
  return 1;
}
