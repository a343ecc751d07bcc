// segload: a closed-loop load generator for segserve.
//
// For each concurrency level N, N workers each send the next request as soon
// as the previous one returns, for --duration_s seconds after a warm-up. Each
// step prints throughput, latency percentiles, errors by status code and the
// server's mean timing and batch size; --json writes the same as JSON.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/load_stats.h"
#include "client/request_util.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

ABSL_FLAG(std::string, target, "localhost:50051",
          "Server address: host:port or dns:///name:port.");
ABSL_FLAG(std::string, concurrency, "1,4,16",
          "Comma-separated concurrency levels, one step each (1..1024).");
ABSL_FLAG(double, duration_s, 10, "Measured seconds per step.");
ABSL_FLAG(int, warmup_requests, 20,
          "Requests sent (and not measured) before each step.");
ABSL_FLAG(std::string, image, "",
          "Image file to send; empty: a synthetic image of --width x "
          "--height deterministic random pixels.");
ABSL_FLAG(int, width, 512, "Synthetic image width.");
ABSL_FLAG(int, height, 512, "Synthetic image height.");
ABSL_FLAG(bool, raw, false,
          "Send raw RGB8 pixels instead of an encoded file (JPEG for the "
          "synthetic image, the file's own bytes for --image).");
ABSL_FLAG(std::string, model, "", "Model name; empty: the server's default.");
ABSL_FLAG(std::string, mask_encoding, "png",
          "Mask encoding to ask for: png, raw or rle.");
ABSL_FLAG(int64_t, deadline_ms, 10000, "Deadline of each request in ms.");
ABSL_FLAG(int, channels, 1,
          "gRPC channels (connections) per step; workers share them "
          "round-robin.");
ABSL_FLAG(int, connect_timeout_s, 10,
          "Give up when the server cannot be reached within this time.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the synthetic image.");
ABSL_FLAG(std::string, json, "", "Also write the results as JSON here.");

namespace segserve {
namespace {

using Clock = std::chrono::steady_clock;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "segload: error: %s: %s\n",
               absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<std::vector<int>> ParseConcurrency(const std::string& text) {
  std::vector<int> levels;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int level = 0;
    if (!absl::SimpleAtoi(part, &level) || level < 1 || level > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("--concurrency has '", part,
                       "'; use comma-separated integers 1..1024"));
    }
    levels.push_back(level);
  }
  if (levels.empty()) {
    return absl::InvalidArgumentError("--concurrency lists no level");
  }
  return levels;
}

absl::StatusOr<v1::MaskEncoding> ParseEncoding(const std::string& name) {
  if (name == "png") return v1::PNG;
  if (name == "raw") return v1::RAW;
  if (name == "rle") return v1::RLE;
  return absl::InvalidArgumentError(absl::StrCat(
      "--mask_encoding=", name, " is unknown; use png, raw or rle"));
}

absl::StatusOr<v1::SegmentRequest> BuildRequest() {
  const std::string path = absl::GetFlag(FLAGS_image);
  const bool raw = absl::GetFlag(FLAGS_raw);
  cv::Mat rgb;
  std::string encoded;
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
    encoded.assign(std::istreambuf_iterator<char>(in),
                   std::istreambuf_iterator<char>());
    if (raw) {
      const cv::Mat bgr = cv::imdecode(
          cv::Mat(1, static_cast<int>(encoded.size()), CV_8UC1, encoded.data()),
          cv::IMREAD_COLOR);
      if (bgr.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot decode ", path, " to send it raw"));
      }
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    }
  } else {
    const int width = absl::GetFlag(FLAGS_width);
    const int height = absl::GetFlag(FLAGS_height);
    if (width < 1 || height < 1 || width > 16384 || height > 16384) {
      return absl::InvalidArgumentError(
          absl::StrCat("--width/--height ", width, "x", height,
                       " is out of range; each side must be 1..16384"));
    }
    rgb.create(height, width, CV_8UC3);
    cv::RNG rng(absl::GetFlag(FLAGS_seed));
    rng.fill(rgb, cv::RNG::UNIFORM, 0, 256);
    if (!raw) {
      std::vector<uchar> buffer;
      cv::Mat bgr;
      cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
      cv::imencode(".jpg", bgr, buffer, {cv::IMWRITE_JPEG_QUALITY, 90});
      encoded.assign(buffer.begin(), buffer.end());
    }
  }
  v1::SegmentRequest request;
  if (raw) {
    absl::StatusOr<v1::SegmentRequest> made = MakeRawRequest(rgb, v1::RGB8);
    if (!made.ok()) return made.status();
    request = std::move(*made);
  } else {
    request = MakeEncodedRequest(std::move(encoded));
  }
  request.set_model(absl::GetFlag(FLAGS_model));
  absl::StatusOr<v1::MaskEncoding> encoding =
      ParseEncoding(absl::GetFlag(FLAGS_mask_encoding));
  if (!encoding.ok()) return encoding.status();
  request.set_mask_encoding(*encoding);
  return request;
}

// Runs `concurrency` closed-loop workers until `stop_at`, or until
// `max_requests` requests were sent (0: no limit), and returns every finished
// request. Bounded: no request starts after stop_at and each has a deadline.
std::vector<LoadSample> RunClosedLoop(
    const std::vector<std::unique_ptr<Client>>& clients,
    const v1::SegmentRequest& request, int concurrency,
    Clock::time_point stop_at, int64_t max_requests) {
  std::atomic<int64_t> sent{0};
  std::vector<std::vector<LoadSample>> per_worker(concurrency);
  std::vector<std::thread> workers;
  workers.reserve(concurrency);
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&, w] {
      Client& client = *clients[w % clients.size()];
      std::vector<LoadSample>& samples = per_worker[w];
      while (Clock::now() < stop_at &&
             (max_requests == 0 || sent.fetch_add(1) < max_requests)) {
        const Clock::time_point start = Clock::now();
        absl::StatusOr<v1::SegmentResponse> response = client.Segment(request);
        LoadSample sample;
        sample.latency_us =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                                  start)
                .count();
        sample.code = response.status().code();
        if (response.ok()) {
          const v1::Timing& t = response->timing();
          sample.queue_us = t.queue_us();
          sample.preprocess_us = t.preprocess_us();
          sample.inference_us = t.inference_us();
          sample.postprocess_us = t.postprocess_us();
          sample.batch_size = t.batch_size();
        }
        samples.push_back(sample);
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  std::vector<LoadSample> all;
  for (std::vector<LoadSample>& samples : per_worker) {
    all.insert(all.end(), samples.begin(), samples.end());
  }
  return all;
}

int Run() {
  absl::StatusOr<std::vector<int>> levels =
      ParseConcurrency(absl::GetFlag(FLAGS_concurrency));
  if (!levels.ok()) return Fail(levels.status());
  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  if (!(duration_s > 0 && duration_s <= 3600)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--duration_s=", duration_s, " is out of range; use (0, 3600]")));
  }
  const int warmup = absl::GetFlag(FLAGS_warmup_requests);
  const int channels = absl::GetFlag(FLAGS_channels);
  if (warmup < 0 || channels < 1 || channels > 64) {
    return Fail(absl::InvalidArgumentError(
        "--warmup_requests must be >= 0 and --channels 1..64"));
  }
  const int64_t deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
  if (deadline_ms < 1) {
    return Fail(absl::InvalidArgumentError(
        "--deadline_ms must be >= 1 so that every step ends"));
  }
  absl::StatusOr<v1::SegmentRequest> request = BuildRequest();
  if (!request.ok()) return Fail(request.status());

  std::printf("segload: target %s, request %zu bytes (%s), %g s per step\n",
              absl::GetFlag(FLAGS_target).c_str(), request->ByteSizeLong(),
              request->image().has_raw() ? "raw RGB8" : "encoded", duration_s);
  std::printf("%s\n", FormatStepHeader().c_str());

  std::vector<LoadStepResult> steps;
  for (const int concurrency : *levels) {
    ClientOptions options;
    options.target = absl::GetFlag(FLAGS_target);
    options.default_deadline_ms = deadline_ms;
    // Retries would hide errors and inflate latencies: measure what is there.
    options.retry_max_attempts = 1;
    options.dedicated_connection = channels > 1;
    std::vector<std::unique_ptr<Client>> clients;
    for (int c = 0; c < channels; ++c) {
      absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
      if (!client.ok()) return Fail(client.status());
      if (absl::Status s = (*client)->WaitForConnected(
              absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s)));
          !s.ok()) {
        return Fail(s);
      }
      clients.push_back(std::move(*client));
    }
    const auto step_limit = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(duration_s));
    if (warmup > 0) {
      // Capped by the step's duration as well, so a slow server cannot make
      // the warm-up unbounded.
      RunClosedLoop(clients, *request, concurrency, Clock::now() + step_limit,
                    warmup);
    }
    const Clock::time_point start = Clock::now();
    std::vector<LoadSample> samples = RunClosedLoop(
        clients, *request, concurrency, start + step_limit, /*max_requests=*/0);
    const double elapsed_s =
        std::chrono::duration<double>(Clock::now() - start).count();
    steps.push_back(SummarizeStep(concurrency, samples, elapsed_s));
    std::printf("%s\n", FormatStepRow(steps.back()).c_str());
    std::fflush(stdout);
  }

  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    const std::vector<std::pair<std::string, std::string>> config = {
        {"target", JsonString(absl::GetFlag(FLAGS_target))},
        {"model", JsonString(absl::GetFlag(FLAGS_model))},
        {"mode", JsonString("closed_loop")},
        {"image", JsonString(absl::GetFlag(FLAGS_image))},
        {"width", absl::StrCat(absl::GetFlag(FLAGS_width))},
        {"height", absl::StrCat(absl::GetFlag(FLAGS_height))},
        {"raw", absl::GetFlag(FLAGS_raw) ? "true" : "false"},
        {"request_bytes", absl::StrCat(request->ByteSizeLong())},
        {"mask_encoding", JsonString(absl::GetFlag(FLAGS_mask_encoding))},
        {"duration_s", absl::StrCat(duration_s)},
        {"warmup_requests", absl::StrCat(warmup)},
        {"deadline_ms", absl::StrCat(deadline_ms)},
        {"channels", absl::StrCat(channels)},
    };
    std::ofstream out(path);
    out << LoadReportJson(steps, config);
    if (!out) {
      return Fail(absl::PermissionDeniedError(
          absl::StrCat("cannot write --json file ", path)));
    }
  }
  for (const LoadStepResult& step : steps) {
    if (step.ok > 0) return 0;
  }
  std::fprintf(
      stderr, "segload: error: no request succeeded (see the errors column)\n");
  return 1;
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "closed-loop load generator for segserve.\n"
      "  segload --target host:port --concurrency 1,4,16 --duration_s 10 "
      "[--image FILE | --width W --height H] [--raw] [--model M] "
      "[--json out.json]");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr,
                 "segload: error: INVALID_ARGUMENT: unexpected argument '%s'; "
                 "every option is a --flag (see --help)\n",
                 positional[1]);
    return 1;
  }
  return segserve::Run();
}
