// segclient: segments one image file with a segserve server and writes the
// mask and an overlay.
//
//   segclient --image in.jpg --mask out.png --overlay overlay.png

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/client.h"
#include "client/overlay.h"
#include "client/request_util.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "tools/tls_flags.h"

ABSL_FLAG(std::string, image, "",
          "Image file to segment (JPEG, PNG, BMP, WebP or TIFF); required. "
          "Sent as is.");
ABSL_FLAG(std::string, mask, "",
          "Write the mask here as a PNG of the image's size, class ids as "
          "gray values (16-bit when the model has over 256 classes).");
ABSL_FLAG(std::string, overlay, "",
          "Write the image blended with class colors here (PNG).");
ABSL_FLAG(std::string, confidence, "",
          "Ask for per-pixel confidence and write it here as an 8-bit PNG.");
ABSL_FLAG(std::string, model, "", "Model name; empty: the server's default.");
ABSL_FLAG(std::string, model_version, "",
          "Model version; empty: the latest ready version.");
ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "Server address: host:port, or dns:///name:port to balance over "
          "every address of the name.");
ABSL_FLAG(std::string, encoding, "png",
          "Mask encoding to ask for: png, raw or rle.");
ABSL_FLAG(int64_t, deadline_ms, 30000, "Call deadline in ms; 0: none.");
ABSL_FLAG(std::string, request_id, "", "Request id, echoed by the server.");
ABSL_FLAG(double, alpha, 0.5, "Overlay opacity of the class colors, 0..1.");
ABSL_FLAG(bool, health, false,
          "Only ask the server's grpc.health.v1 service about "
          "--health_service and exit: 0 SERVING, 1 NOT_SERVING (or unknown), "
          "2 unreachable or no such service. For container health checks.");
ABSL_FLAG(std::string, health_service, "readiness",
          "With --health: the service to ask about: readiness, liveness, or "
          "\"\" for the whole server.");

namespace segserve {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "segclient: error: %s: %s\n",
               absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  }
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return data;
}

absl::Status WritePng(const std::string& path, const cv::Mat& image) {
  try {
    if (cv::imwrite(path, image, {cv::IMWRITE_PNG_COMPRESSION, 3})) {
      return absl::OkStatus();
    }
  } catch (const cv::Exception& e) {
    return absl::InternalError(
        absl::StrCat("cannot write ", path, ": ", e.what()));
  }
  return absl::PermissionDeniedError(
      absl::StrCat("cannot write ", path,
                   " (is the directory writable and the name a .png?)"));
}

absl::StatusOr<v1::MaskEncoding> ParseEncoding(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "png") return v1::PNG;
  if (lower == "raw") return v1::RAW;
  if (lower == "rle") return v1::RLE;
  return absl::InvalidArgumentError(
      absl::StrCat("--encoding=", name, " is unknown; use png, raw or rle"));
}

// Class statistics from the response, or counted from the mask when the
// server sent none.
std::map<int, std::pair<std::string, uint64_t>> ClassPixels(
    const v1::SegmentResponse& response, const cv::Mat& labels) {
  std::map<int, std::pair<std::string, uint64_t>> classes;
  for (const v1::ClassStat& stat : response.class_stats()) {
    classes[static_cast<int>(stat.class_id())] = {stat.name(), stat.pixels()};
  }
  if (!classes.empty() || labels.empty()) return classes;
  cv::Mat ids;
  labels.convertTo(ids, CV_32S);
  for (int y = 0; y < ids.rows; ++y) {
    const int* row = ids.ptr<int>(y);
    for (int x = 0; x < ids.cols; ++x) ++classes[row[x]].second;
  }
  return classes;
}

double Ms(uint64_t us) { return us / 1000.0; }

int CheckHealth() {
  ClientOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.default_deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
  options.retry_max_attempts = 1;  // A probe answers now or fails.
  if (absl::Status tls = ApplyTlsFlags(&options); !tls.ok()) {
    Fail(tls);
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  if (!client.ok()) {
    Fail(client.status());
    return 2;
  }
  const std::string service = absl::GetFlag(FLAGS_health_service);
  absl::StatusOr<Client::Health> health = (*client)->CheckHealth(service);
  if (!health.ok()) {
    Fail(health.status());
    return 2;
  }
  const char* name = *health == Client::Health::kServing      ? "SERVING"
                     : *health == Client::Health::kNotServing ? "NOT_SERVING"
                                                              : "UNKNOWN";
  std::printf("%s: %s\n", service.empty() ? "(server)" : service.c_str(), name);
  return *health == Client::Health::kServing ? 0 : 1;
}

int Run() {
  if (absl::GetFlag(FLAGS_health)) return CheckHealth();
  const std::string image_path = absl::GetFlag(FLAGS_image);
  if (image_path.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--image is required; see segclient --help"));
  }
  absl::StatusOr<v1::MaskEncoding> encoding =
      ParseEncoding(absl::GetFlag(FLAGS_encoding));
  if (!encoding.ok()) return Fail(encoding.status());
  const double alpha = absl::GetFlag(FLAGS_alpha);
  if (!(alpha >= 0 && alpha <= 1)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--alpha=", alpha, " is out of range; use 0..1")));
  }

  absl::StatusOr<std::string> bytes = ReadFile(image_path);
  if (!bytes.ok()) return Fail(bytes.status());
  // Decoded locally only for its size and the overlay; the server gets the
  // file's bytes.
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(
        cv::Mat(1, static_cast<int>(bytes->size()), CV_8UC1, bytes->data()),
        cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    bgr = cv::Mat();
  }
  if (bgr.empty() && !absl::GetFlag(FLAGS_overlay).empty()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "cannot decode ", image_path, " locally to draw the overlay")));
  }

  ClientOptions options;
  options.target = absl::GetFlag(FLAGS_target);
  options.default_deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
  if (absl::Status tls = ApplyTlsFlags(&options); !tls.ok()) return Fail(tls);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  if (!client.ok()) return Fail(client.status());

  v1::SegmentRequest request = MakeEncodedRequest(std::move(*bytes));
  request.set_model(absl::GetFlag(FLAGS_model));
  request.set_model_version(absl::GetFlag(FLAGS_model_version));
  request.set_mask_encoding(*encoding);
  request.set_request_id(absl::GetFlag(FLAGS_request_id));
  request.set_include_confidence(!absl::GetFlag(FLAGS_confidence).empty());

  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<v1::SegmentResponse> response = (*client)->Segment(request);
  const double round_trip_ms = std::chrono::duration<double, std::milli>(
                                   std::chrono::steady_clock::now() - start)
                                   .count();
  if (!response.ok()) return Fail(response.status());

  absl::StatusOr<cv::Mat> labels = DecodeMaskToMat(response->mask());
  if (!labels.ok()) return Fail(labels.status());
  if (!bgr.empty() && labels->size() != bgr.size()) {
    std::fprintf(stderr,
                 "segclient: warning: the server's mask is %dx%d but the "
                 "image is %dx%d; resizing the mask\n",
                 labels->cols, labels->rows, bgr.cols, bgr.rows);
    cv::resize(*labels, *labels, bgr.size(), 0, 0, cv::INTER_NEAREST);
  }

  std::printf("model: %s  version: %s", response->model().c_str(),
              response->model_version().c_str());
  if (!response->request_id().empty()) {
    std::printf("  request_id: %s", response->request_id().c_str());
  }
  std::printf("\nimage: %s (%dx%d)\n", image_path.c_str(), labels->cols,
              labels->rows);
  const double area = static_cast<double>(labels->total());
  const auto classes = ClassPixels(*response, *labels);
  std::printf("classes found: %zu\n", classes.size());
  std::printf("  %5s  %-24s %10s %8s\n", "id", "name", "pixels", "area");
  for (const auto& [id, stat] : classes) {
    std::printf("  %5d  %-24s %10llu %7.2f%%\n", id,
                stat.first.empty() ? "-" : stat.first.c_str(),
                static_cast<unsigned long long>(stat.second),
                100.0 * stat.second / area);
  }
  const v1::Timing& t = response->timing();
  std::printf(
      "server: queue %.2f ms, preprocess %.2f ms, inference %.2f ms, "
      "postprocess %.2f ms, batch size %u\n",
      Ms(t.queue_us()), Ms(t.preprocess_us()), Ms(t.inference_us()),
      Ms(t.postprocess_us()), t.batch_size());
  if (t.tiles() > 1) std::printf("tiles: %u (sliding windows)\n", t.tiles());
  std::printf("round trip: %.2f ms\n", round_trip_ms);

  if (const std::string path = absl::GetFlag(FLAGS_mask); !path.empty()) {
    if (absl::Status s = WritePng(path, *labels); !s.ok()) return Fail(s);
    std::printf("wrote mask %s (%dx%d, %d-bit)\n", path.c_str(), labels->cols,
                labels->rows, labels->depth() == CV_16U ? 16 : 8);
  }
  if (const std::string path = absl::GetFlag(FLAGS_overlay); !path.empty()) {
    const cv::Mat overlay =
        RenderOverlay(bgr, *labels, static_cast<float>(alpha));
    if (absl::Status s = WritePng(path, overlay); !s.ok()) return Fail(s);
    std::printf("wrote overlay %s\n", path.c_str());
  }
  if (const std::string path = absl::GetFlag(FLAGS_confidence); !path.empty()) {
    absl::StatusOr<cv::Mat> confidence =
        DecodeConfidenceToMat(response->mask());
    if (!confidence.ok()) return Fail(confidence.status());
    if (!bgr.empty() && confidence->size() != bgr.size()) {
      cv::resize(*confidence, *confidence, bgr.size(), 0, 0, cv::INTER_NEAREST);
    }
    if (absl::Status s = WritePng(path, *confidence); !s.ok()) return Fail(s);
    std::printf("wrote confidence %s\n", path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "segments one image with a segserve server.\n"
      "  segclient --image in.jpg --mask out.png --overlay overlay.png "
      "[--model M] [--target host:port] [--encoding png|raw|rle] "
      "[--deadline_ms N] [--request_id ID]\n"
      "  segclient --health [--health_service readiness|liveness] "
      "[--target host:port]   (exit 0: SERVING)");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr,
                 "segclient: error: INVALID_ARGUMENT: unexpected argument "
                 "'%s'; every option is a --flag (see --help)\n",
                 positional[1]);
    return 1;
  }
  return segserve::Run();
}
