// segload: a load generator for segserve, in the manner of Triton's
// perf_analyzer.
//
// Each load level is a step: closed loop (--concurrency: N workers, each
// sending its next request when the previous one returns) or open loop
// (--rate: sends on a constant or Poisson schedule, never waiting for
// responses). A step warms up, then measures windows until throughput and
// p95 are stable, or a fixed duration, or a fixed request count. Each step
// prints throughput, latency percentiles, the client-side and server-side
// split of the time, errors by status code and late sends; --json, --csv and
// --plot write the same to files.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "common/status_macros.h"
#include "tools/segload/http_sender.h"
#include "tools/segload/load_inputs.h"
#include "tools/segload/load_parse.h"
#include "tools/segload/load_plot.h"
#include "tools/segload/load_report.h"
#include "tools/segload/load_runner.h"
#include "tools/segload/load_schedule.h"
#include "tools/segload/load_step.h"
#include "tools/tls_flags.h"

// Where the load goes.
ABSL_FLAG(std::string, protocol, "segment",
          "The API to load: 'segment' (segserve.v1 Segment), 'oip' (the "
          "Open Inference Protocol's ModelInfer, same images), 'http' "
          "(KServe v2 REST infer with binary tensors, on the HTTP port) or "
          "'http-segment' (the HTTP image endpoint). Only 'segment' answers "
          "carry the server's timing; the HTTP ones need --model and a "
          "host:port target, and speak plain HTTP.");
ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "Server address(es): host:port, dns:///name:port, unix:/path; "
          "comma-separated for several servers, which get the requests in "
          "turn (client-side round robin).");
ABSL_FLAG(int, channels, 1,
          "gRPC channels per target, each its own connection (1..64); "
          "requests are spread over them in turn.");
ABSL_FLAG(int, connect_timeout_s, 10,
          "Give up when a target cannot be reached within this time.");
ABSL_FLAG(int64_t, deadline_ms, 10000, "Deadline of each request in ms.");
ABSL_FLAG(int, retry_max_attempts, 1,
          "Attempts per request, the first included (1..5), retrying "
          "UNAVAILABLE through gRPC's retry policy. 1 (no retry) by default: "
          "retries would hide errors and inflate latencies.");

// The load levels.
ABSL_FLAG(std::string, concurrency, "",
          "Closed loop: concurrency levels, one step each (1..1024): a list "
          "'1,4,16', a range '1:64:x2' (1,2,4,..,64) or '1:16:+4' (1,5,9,13), "
          "or a mix. Default when --rate is not given: 1,4,16.");
ABSL_FLAG(std::string, rate, "",
          "Open loop: request rates per second, one step each, in the same "
          "list/range syntax ('10,50', '10:160:x2'). Requests leave on "
          "schedule whether or not earlier ones have returned.");
ABSL_FLAG(std::string, arrivals, "constant",
          "Open loop: 'constant' (evenly spaced) or 'poisson' (exponential "
          "gaps, seeded by --seed) arrivals.");
ABSL_FLAG(int, max_outstanding, 1000,
          "Open loop: most requests in flight; a send that would exceed it "
          "waits and counts as late.");

// How long each step measures.
ABSL_FLAG(double, window_s, 5,
          "Length of a measurement window in seconds. Windows repeat until "
          "the last three have throughput and p95 within "
          "--stability_percent of their mean, or --max_windows ran; the "
          "step reports the last three windows together.");
ABSL_FLAG(int, max_windows, 10, "Most measurement windows per step.");
ABSL_FLAG(double, stability_percent, 10,
          "Stability threshold in percent (see --window_s).");
ABSL_FLAG(double, duration_s, 0,
          "If > 0: measure exactly this many seconds per step (one window, "
          "no stability rule).");
ABSL_FLAG(int64_t, requests, 0,
          "If > 0: measure exactly this many requests per step (after the "
          "warm-up); the step gives up after --max_step_s.");
ABSL_FLAG(double, max_step_s, 600,
          "With --requests: most seconds a step may measure.");
ABSL_FLAG(int64_t, warmup_requests, 20,
          "Requests sent at the step's load level, not measured, before "
          "each step.");
ABSL_FLAG(double, warmup_s, 10, "Longest warm-up in seconds.");

// What is sent.
ABSL_FLAG(std::string, image, "", "An image file to send.");
ABSL_FLAG(std::string, image_dir, "",
          "A folder whose JPEG, PNG, BMP, WebP and TIFF files are sent in "
          "turn (sorted by name).");
ABSL_FLAG(
    std::string, sizes, "512x512",
    "Without --image/--image_dir: synthetic scenes (datasets/scene.h, "
    "seeds from --seed) of these sizes, sent in turn: '512x512,1024x768'.");
ABSL_FLAG(std::string, send, "file",
          "How images travel when encoded: 'file' (files' own bytes; JPEG "
          "for synthetic images), 'jpeg' or 'png' (encoded by segload once, "
          "before the run).");
ABSL_FLAG(bool, raw, false, "Send raw RGB8 pixels instead of encoded images.");
ABSL_FLAG(int, jpeg_quality, 90, "JPEG quality when segload encodes.");
ABSL_FLAG(std::string, model, "", "Model name; empty: the server's default.");
ABSL_FLAG(std::string, mask_encoding, "png",
          "Mask encoding to ask for: png, raw or rle.");
ABSL_FLAG(bool, decode_masks, true,
          "Decode every mask at the client (the 'deser' column); a mask "
          "that does not decode to the image's size counts as DATA_LOSS.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the synthetic images and arrivals.");

// Outputs.
ABSL_FLAG(std::string, json, "", "Also write the results as JSON here.");
ABSL_FLAG(std::string, csv, "", "Also write one CSV line per step here.");
ABSL_FLAG(std::string, plot, "",
          "Also draw p50 and p99 latency against throughput as SVG here.");

namespace segserve {
namespace {

constexpr char kUsage[] =
    "load generator for segserve (closed and open loop).\n"
    "  segload --target host:port[,host:port]\n"
    "          [--concurrency 1:64:x2 | --rate 10,50 [--arrivals poisson]]\n"
    "          [--image F | --image_dir D | --sizes 512x512,1024x768]\n"
    "          [--send jpeg|png | --raw] [--mask_encoding png|raw|rle]\n"
    "          [--window_s 5 --max_windows 10 | --duration_s S | "
    "--requests N]\n"
    "          [--json F] [--csv F] [--plot F.svg]\n"
    "\n"
    "Columns (per successful request; means unless a percentile):\n"
    "  req/s      successful responses per second of measured time\n"
    "  pNN, max   latency: issuing the call to the decoded mask "
    "(wait + deser)\n"
    "  ser        protobuf serialization of the request, timed once per\n"
    "             distinct request before the run (gRPC repeats this work\n"
    "             inside 'wait')\n"
    "  wait       the RPC, issue to response: gRPC's serialization and\n"
    "             parsing, the network and the server\n"
    "  deser      decoding the mask to a label map (--decode_masks)\n"
    "  queue .. batch  the server's Timing, from the responses\n"
    "  win        windows measured; '*': not stable within --max_windows\n"
    "  late       open loop: sends that left over 1 ms after schedule\n"
    "Exit status 1 on a bad flag, or when no request of a step succeeded\n"
    "(the later steps are skipped).";

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "segload: error: %s: %s\n",
               absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return 1;
}

absl::StatusOr<v1::MaskEncoding> ParseEncoding(const std::string& name) {
  if (name == "png") return v1::PNG;
  if (name == "raw") return v1::RAW;
  if (name == "rle") return v1::RLE;
  return absl::InvalidArgumentError(absl::StrCat(
      "--mask_encoding=", name, " is unknown; use png, raw or rle"));
}

absl::StatusOr<SendAs> ParseSend(const std::string& name, bool raw) {
  SendAs send;
  if (name == "file") {
    send = SendAs::kFile;
  } else if (name == "jpeg") {
    send = SendAs::kJpeg;
  } else if (name == "png") {
    send = SendAs::kPng;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--send=", name, " is unknown; use file, jpeg or png"));
  }
  if (!raw) return send;
  if (send != SendAs::kFile) {
    return absl::InvalidArgumentError(
        "--raw sends pixels; it cannot be combined with --send jpeg|png");
  }
  return SendAs::kRaw;
}

absl::Status CheckRange(const char* flag, double value, double min,
                        double max) {
  if (value >= min && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, "=", value, " is out of range; allowed: ", min, "..", max));
}

// Everything the flags say, checked.
struct Config {
  std::vector<std::string> targets;
  std::vector<int> concurrency;  // Closed loop when not empty.
  std::vector<double> rates;     // Open loop when not empty.
  Arrivals arrivals = Arrivals::kConstant;
  StepPlan plan;
  LoadInputOptions inputs;
  bool open_loop() const { return !rates.empty(); }
};

absl::Status CheckNumbers() {
  const absl::Status checks[] = {
      CheckRange("channels", absl::GetFlag(FLAGS_channels), 1, 64),
      CheckRange("connect_timeout_s", absl::GetFlag(FLAGS_connect_timeout_s), 1,
                 3600),
      CheckRange("deadline_ms", absl::GetFlag(FLAGS_deadline_ms), 1, 3600000),
      CheckRange("max_outstanding", absl::GetFlag(FLAGS_max_outstanding), 1,
                 100000),
      CheckRange("window_s", absl::GetFlag(FLAGS_window_s), 0.01, 3600),
      CheckRange("max_windows", absl::GetFlag(FLAGS_max_windows), 1, 1000),
      CheckRange("stability_percent", absl::GetFlag(FLAGS_stability_percent), 0,
                 1000),
      CheckRange("duration_s", absl::GetFlag(FLAGS_duration_s), 0, 3600),
      CheckRange("requests", absl::GetFlag(FLAGS_requests), 0, 1e9),
      CheckRange("max_step_s", absl::GetFlag(FLAGS_max_step_s), 0.01, 86400),
      CheckRange("warmup_requests", absl::GetFlag(FLAGS_warmup_requests), 0,
                 1e6),
      CheckRange("warmup_s", absl::GetFlag(FLAGS_warmup_s), 0, 3600),
      CheckRange("jpeg_quality", absl::GetFlag(FLAGS_jpeg_quality), 1, 100),
  };
  for (const absl::Status& status : checks) {
    SEGSERVE_RETURN_IF_ERROR(status);
  }
  if (absl::GetFlag(FLAGS_duration_s) > 0 &&
      absl::GetFlag(FLAGS_requests) > 0) {
    return absl::InvalidArgumentError(
        "give --duration_s or --requests, not both");
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> ReadFlags() {
  SEGSERVE_RETURN_IF_ERROR(CheckNumbers());
  Config config;
  SEGSERVE_ASSIGN_OR_RETURN(config.targets,
                            ParseTargets(absl::GetFlag(FLAGS_target)));

  const std::string concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::string rate = absl::GetFlag(FLAGS_rate);
  if (!concurrency.empty() && !rate.empty()) {
    return absl::InvalidArgumentError(
        "give --concurrency (closed loop) or --rate (open loop), not both");
  }
  if (!rate.empty()) {
    SEGSERVE_ASSIGN_OR_RETURN(config.rates, ParseRates(rate));
  } else {
    SEGSERVE_ASSIGN_OR_RETURN(
        config.concurrency,
        ParseConcurrencyLevels(concurrency.empty() ? "1,4,16" : concurrency));
  }
  SEGSERVE_ASSIGN_OR_RETURN(config.arrivals,
                            ParseArrivals(absl::GetFlag(FLAGS_arrivals)));

  StepPlan& plan = config.plan;
  plan.warmup_requests = absl::GetFlag(FLAGS_warmup_requests);
  plan.warmup_max_s = absl::GetFlag(FLAGS_warmup_s);
  plan.requests = absl::GetFlag(FLAGS_requests);
  plan.max_step_s = absl::GetFlag(FLAGS_max_step_s);
  plan.duration_s = absl::GetFlag(FLAGS_duration_s);
  plan.window_s = absl::GetFlag(FLAGS_window_s);
  plan.max_windows = absl::GetFlag(FLAGS_max_windows);
  plan.stability_percent = absl::GetFlag(FLAGS_stability_percent);

  LoadInputOptions& inputs = config.inputs;
  inputs.image = absl::GetFlag(FLAGS_image);
  inputs.image_dir = absl::GetFlag(FLAGS_image_dir);
  SEGSERVE_ASSIGN_OR_RETURN(inputs.sizes,
                            ParseSizes(absl::GetFlag(FLAGS_sizes)));
  SEGSERVE_ASSIGN_OR_RETURN(inputs.send, ParseSend(absl::GetFlag(FLAGS_send),
                                                   absl::GetFlag(FLAGS_raw)));
  inputs.jpeg_quality = absl::GetFlag(FLAGS_jpeg_quality);
  inputs.seed = absl::GetFlag(FLAGS_seed);
  inputs.model = absl::GetFlag(FLAGS_model);
  SEGSERVE_ASSIGN_OR_RETURN(inputs.mask_encoding,
                            ParseEncoding(absl::GetFlag(FLAGS_mask_encoding)));
  return config;
}

// The clients, channel-major so that consecutive requests go to different
// targets: client c * targets + t is channel c of target t.
struct Connections {
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<ClientOptions> client_options;
  std::vector<HttpSenderOptions> http_options;  // HTTP: instead of clients.
  std::vector<int> client_targets;
};

// HTTP: one sender per channel and target, each with its own connections.
absl::StatusOr<Connections> HttpConnections(const Config& config) {
  Connections connections;
  ClientOptions flags;
  SEGSERVE_RETURN_IF_ERROR(ApplyTlsFlags(&flags));
  if (flags.credentials != nullptr) {
    return absl::InvalidArgumentError(
        "segload speaks plain HTTP; drop the TLS flags with --protocol http");
  }
  for (int c = 0; c < absl::GetFlag(FLAGS_channels); ++c) {
    for (size_t t = 0; t < config.targets.size(); ++t) {
      const std::string& target = config.targets[t];
      const size_t colon = target.rfind(':');
      HttpSenderOptions options;
      if (colon == std::string::npos ||
          !absl::SimpleAtoi(target.substr(colon + 1), &options.port)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--target '", target, "' is not host:port (HTTP needs one)"));
      }
      options.host = target.substr(0, colon);
      options.image_endpoint = absl::GetFlag(FLAGS_protocol) == "http-segment";
      options.deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
      options.bearer_token = flags.bearer_token;
      connections.http_options.push_back(options);
      connections.client_targets.push_back(static_cast<int>(t));
    }
  }
  return connections;
}

absl::StatusOr<Connections> Connect(const Config& config) {
  const int channels = absl::GetFlag(FLAGS_channels);
  Connections connections;
  for (int c = 0; c < channels; ++c) {
    for (size_t t = 0; t < config.targets.size(); ++t) {
      ClientOptions options;
      options.target = config.targets[t];
      options.default_deadline_ms = absl::GetFlag(FLAGS_deadline_ms);
      options.retry_max_attempts = absl::GetFlag(FLAGS_retry_max_attempts);
      options.dedicated_connection = channels > 1;
      SEGSERVE_RETURN_IF_ERROR(ApplyTlsFlags(&options));
      SEGSERVE_ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
                                Client::Create(options));
      SEGSERVE_RETURN_IF_ERROR(client->WaitForConnected(
          absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s))));
      connections.clients.push_back(std::move(client));
      connections.client_options.push_back(options);
      connections.client_targets.push_back(static_cast<int>(t));
    }
  }
  return connections;
}

std::string JsonList(const std::vector<std::string>& values) {
  std::vector<std::string> quoted;
  for (const std::string& value : values) quoted.push_back(JsonString(value));
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

std::vector<std::pair<std::string, std::string>> ConfigJson(
    const Config& config, const std::vector<LoadInput>& inputs) {
  uint64_t bytes = 0;
  for (const LoadInput& input : inputs) bytes += input.request_bytes;
  auto b = [](bool value) -> std::string { return value ? "true" : "false"; };
  return {
      {"targets", JsonList(config.targets)},
      {"channels", absl::StrCat(absl::GetFlag(FLAGS_channels))},
      {"mode", JsonString(config.open_loop() ? "open_loop" : "closed_loop")},
      {"arrivals",
       config.open_loop() ? JsonString(ArrivalsName(config.arrivals)) : "null"},
      {"max_outstanding", absl::StrCat(absl::GetFlag(FLAGS_max_outstanding))},
      {"model", JsonString(absl::GetFlag(FLAGS_model))},
      {"image", JsonString(absl::GetFlag(FLAGS_image))},
      {"image_dir", JsonString(absl::GetFlag(FLAGS_image_dir))},
      {"sizes", JsonString(absl::GetFlag(FLAGS_sizes))},
      {"send", JsonString(absl::GetFlag(FLAGS_send))},
      {"raw", b(absl::GetFlag(FLAGS_raw))},
      {"inputs", absl::StrCat(inputs.size())},
      {"request_bytes_mean", JsonNumber(static_cast<double>(bytes) /
                                        static_cast<double>(inputs.size()))},
      {"mask_encoding", JsonString(absl::GetFlag(FLAGS_mask_encoding))},
      {"decode_masks", b(absl::GetFlag(FLAGS_decode_masks))},
      {"window_s", JsonNumber(config.plan.window_s)},
      {"max_windows", absl::StrCat(config.plan.max_windows)},
      {"stability_percent", JsonNumber(config.plan.stability_percent)},
      {"duration_s", JsonNumber(config.plan.duration_s)},
      {"requests", absl::StrCat(config.plan.requests)},
      {"warmup_requests", absl::StrCat(config.plan.warmup_requests)},
      {"deadline_ms", absl::StrCat(absl::GetFlag(FLAGS_deadline_ms))},
      {"seed", absl::StrCat(absl::GetFlag(FLAGS_seed))},
  };
}

absl::Status WriteFile(const std::string& path, const std::string& content,
                       const char* flag) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  out.close();
  if (!out) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write the --", flag, " file ", path));
  }
  return absl::OkStatus();
}

absl::Status WriteOutputs(const LoadReport& report, const Config& config) {
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    SEGSERVE_RETURN_IF_ERROR(WriteFile(path, LoadReportJson(report), "json"));
  }
  if (const std::string path = absl::GetFlag(FLAGS_csv); !path.empty()) {
    SEGSERVE_RETURN_IF_ERROR(WriteFile(path, LoadReportCsv(report), "csv"));
  }
  if (const std::string path = absl::GetFlag(FLAGS_plot); !path.empty()) {
    const std::string title = absl::StrCat(
        "segload: latency vs throughput (",
        config.open_loop()
            ? absl::StrCat("open loop, ", ArrivalsName(config.arrivals))
            : std::string("closed loop"),
        ", ", absl::StrJoin(config.targets, ", "), ")");
    SEGSERVE_RETURN_IF_ERROR(
        WriteFile(path, LatencyThroughputSvg(report.steps, title), "plot"));
  }
  return absl::OkStatus();
}

std::string PlanText(const StepPlan& plan) {
  if (plan.requests > 0) return absl::StrCat(plan.requests, " requests");
  if (plan.duration_s > 0) return absl::StrCat(plan.duration_s, " s");
  return absl::StrCat("windows of ", plan.window_s, " s until stable (",
                      plan.stability_percent, "%, at most ", plan.max_windows,
                      ")");
}

// Rewrites one line on a terminal; does nothing when stdout is not one.
class ProgressLine {
 public:
  ProgressLine() : enabled_(isatty(STDOUT_FILENO) == 1) {}

  void Show(const std::string& level, const StepProgress& p) {
    if (!enabled_) return;
    std::string where = "warming up";
    if (!p.warming_up) {
      where = p.max_windows > 0
                  ? absl::StrCat("window ", p.window, "/", p.max_windows)
                  : std::string("measuring");
    }
    std::printf("\r\033[K  %s: %s, %.1f s, %lld ok, %lld failed", level.c_str(),
                where.c_str(), p.window_elapsed_s, static_cast<long long>(p.ok),
                static_cast<long long>(p.failed));
    std::fflush(stdout);
  }

  void Clear() {
    if (enabled_) std::printf("\r\033[K");
  }

 private:
  const bool enabled_;
};

std::string LevelName(const Config& config, size_t step) {
  return config.open_loop()
             ? absl::StrFormat("rate %g/s", config.rates[step])
             : absl::StrCat("concurrency ", config.concurrency[step]);
}

// Runs step `step` of the run: starts its sender, measures, stops.
LoadStepResult RunStep(const Config& config, size_t step,
                       LoadRunnerOptions runner_options,
                       ProgressLine* progress) {
  SampleSink sink(config.plan.warmup_requests);
  runner_options.sink = &sink;
  std::unique_ptr<LoadRunner> runner =
      config.open_loop()
          ? StartOpenLoop(runner_options, config.rates[step], config.arrivals,
                          absl::GetFlag(FLAGS_seed) + step,
                          absl::GetFlag(FLAGS_max_outstanding))
          : StartClosedLoop(runner_options, config.concurrency[step]);
  const std::string level = LevelName(config, step);
  LoadStepResult result =
      MeasureStep(config.plan, &sink, runner.get(),
                  [&](const StepProgress& p) { progress->Show(level, p); });
  runner.reset();  // Before the sink goes.
  progress->Clear();
  if (config.open_loop()) {
    result.rate_rps = config.rates[step];
  } else {
    result.concurrency = config.concurrency[step];
  }
  return result;
}

int Run() {
  absl::StatusOr<Config> config = ReadFlags();
  if (!config.ok()) return Fail(config.status());
  absl::StatusOr<std::vector<LoadInput>> inputs =
      BuildLoadInputs(config->inputs);
  if (!inputs.ok()) return Fail(inputs.status());
  const std::string protocol = absl::GetFlag(FLAGS_protocol);
  if (protocol != "segment" && protocol != "oip" && protocol != "http" &&
      protocol != "http-segment") {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--protocol is '", protocol,
                     "'; allowed: 'segment', 'oip', 'http', 'http-segment'")));
  }
  const bool http = absl::StartsWith(protocol, "http");
  absl::StatusOr<Connections> connections =
      http ? HttpConnections(*config) : Connect(*config);
  if (!connections.ok()) return Fail(connections.status());
  std::vector<std::unique_ptr<RequestSender>> senders;
  for (size_t i = 0; i < connections->client_targets.size(); ++i) {
    if (http) {
      absl::StatusOr<std::unique_ptr<RequestSender>> sender =
          MakeHttpSender(connections->http_options[i], *inputs);
      if (!sender.ok()) return Fail(sender.status());
      senders.push_back(*std::move(sender));
      continue;
    }
    Client* client = connections->clients[i].get();
    senders.push_back(
        protocol == "oip"
            ? MakeOipSender(client, connections->client_options[i], *inputs)
            : MakeSegmentSender(client));
  }

  const bool open_loop = config->open_loop();
  const int channels = absl::GetFlag(FLAGS_channels);
  const std::string mode =
      open_loop ? absl::StrCat("open loop, ", ArrivalsName(config->arrivals))
                : "closed loop";
  std::printf("segload: %s x %d channel%s, %zu input%s (%s), %s, %s per step\n",
              absl::StrJoin(config->targets, ",").c_str(), channels,
              channels == 1 ? "" : "s", inputs->size(),
              inputs->size() == 1 ? "" : "s",
              absl::GetFlag(FLAGS_raw) ? "raw RGB8" : "encoded", mode.c_str(),
              PlanText(config->plan).c_str());
  std::printf("%s\n", FormatStepHeader(open_loop).c_str());
  std::fflush(stdout);

  LoadRunnerOptions runner_options;
  for (const std::unique_ptr<RequestSender>& sender : senders) {
    runner_options.clients.push_back(sender.get());
  }
  runner_options.client_targets = connections->client_targets;
  runner_options.inputs = &*inputs;
  runner_options.decode_masks = absl::GetFlag(FLAGS_decode_masks);
  if (config->plan.requests > 0) {
    runner_options.max_requests =
        config->plan.warmup_requests + config->plan.requests;
  }

  LoadReport report;
  report.targets = config->targets;
  report.config = ConfigJson(*config, *inputs);
  ProgressLine progress;
  const size_t steps =
      open_loop ? config->rates.size() : config->concurrency.size();
  bool failed_step = false;
  for (size_t i = 0; i < steps && !failed_step; ++i) {
    LoadStepResult step = RunStep(*config, i, runner_options, &progress);
    std::printf("%s\n", FormatStepRow(step, open_loop).c_str());
    std::fflush(stdout);
    if (step.ok == 0) {
      failed_step = true;
      std::fprintf(stderr,
                   "segload: error: no request of the %s step succeeded (see "
                   "the errors column)%s\n",
                   LevelName(*config, i).c_str(),
                   i + 1 < steps ? "; skipping the remaining steps" : "");
    }
    report.steps.push_back(std::move(step));
  }
  for (const LoadStepResult& step : report.steps) {
    if (step.stability_checked && !step.stable && step.ok > 0) {
      std::printf(
          "* not stable within --max_windows: the last (up to) three "
          "windows are reported\n");
      break;
    }
  }
  if (absl::Status s = WriteOutputs(report, *config); !s.ok()) return Fail(s);
  return failed_step ? 1 : 0;
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(segserve::kUsage);
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
