// segserve: the batching gRPC segmentation server.
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "model/cpu_allocator.h"
#include "model/torch_model.h"
#include "model/torch_runtime.h"
#include "server/core/torch_loader.h"
#include "server/server.h"
#include "server/service/token_authorizer.h"
#include "server/tls_credentials.h"

ABSL_FLAG(std::string, model_repository, "model_repository",
          "Directory of models: <name>/config.pbtxt and <name>/<version>/"
          "model.pt.");
ABSL_FLAG(std::string, default_model, "",
          "Model used when a request names none. Empty: the repository's "
          "only model when it holds one (not with "
          "--model_control_mode=explicit); with several, requests must name "
          "one.");
ABSL_FLAG(std::string, model_control_mode, "none",
          "How the served models change after start, as Triton's: none "
          "(never), poll (rescan --model_repository every "
          "--repository_poll_s: new versions load, removed ones unload, "
          "changed configs and weights reload) or explicit (only what "
          "--load_model names, and what RepositoryModelLoad/Unload ask).");
ABSL_FLAG(int, repository_poll_s, 15,
          "Seconds between rescans of the repository with "
          "--model_control_mode=poll.");
ABSL_FLAG(std::vector<std::string>, load_model, {},
          "With --model_control_mode=explicit: models to load at start, "
          "comma-separated (the default model always loads).");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, grpc_port, 50051, "gRPC port (0 picks a free port).");
ABSL_FLAG(int, http_port, 8000,
          "HTTP port of KServe v2 REST and the image endpoint (0 picks a free "
          "port, -1 disables HTTP). Same rights, limits and TLS files as "
          "gRPC.");
ABSL_FLAG(int64_t, http_max_body_bytes, 64LL << 20,
          "Largest HTTP request body accepted, in bytes (larger: 413).");
ABSL_FLAG(int, http_max_header_bytes, 16 << 10,
          "Largest HTTP request line and headers accepted, in bytes.");
ABSL_FLAG(bool, http_playground, true,
          "Serve the playground, a page that sends an image to a model and "
          "shows its mask, at / on the HTTP port (it uses the REST endpoints "
          "and the same tokens).");
ABSL_FLAG(int, http_timeout_s, 30,
          "Seconds an HTTP connection may stay idle or take to send a "
          "request before it is closed (bounds slow clients and idle "
          "keep-alive connections).");
ABSL_FLAG(std::string, metrics_host, "",
          "Address the metrics endpoint listens on (empty: --host), e.g. "
          "127.0.0.1 to keep metrics off the network the API faces.");
ABSL_FLAG(int, metrics_port, 8002,
          "Prometheus /metrics port (0 picks a free port, -1 disables).");
ABSL_FLAG(int64_t, max_image_pixels, 64LL << 20,
          "Largest input image, in pixels (width * height), accepted.");
ABSL_FLAG(bool, reduced_jpeg_decode, true,
          "Decode a JPEG at 1/2, 1/4 or 1/8 scale (in the DCT domain) when "
          "that still covers a STRETCH or LETTERBOX model's input; masks "
          "keep the image's size. False decodes every image whole.");
ABSL_FLAG(bool, fused_mask_upsampling, true,
          "On the CPU, compute each mask's labels and confidence from the "
          "model's low-resolution logits in one pass, without upsampling "
          "every class's logits to the input size first (the same "
          "interpolation; labels differ only where two classes tie within "
          "rounding). False: the unfused path.");
ABSL_FLAG(int, max_message_bytes, 64 << 20,
          "Largest gRPC message, in bytes, received or sent.");
ABSL_FLAG(int, drain_timeout_s, 30,
          "On SIGTERM/SIGINT, seconds to let accepted requests finish.");
ABSL_FLAG(int, grpc_max_connection_age_s, 0,
          "Seconds after which each client connection gets a GOAWAY (+-10% "
          "jitter), so that clients re-resolve the server's name and reach "
          "replicas added since (needed behind a headless Kubernetes "
          "Service); 0: connections live as long as the clients keep them.");
ABSL_FLAG(int, grpc_max_connection_age_grace_s, 0,
          "After a connection's GOAWAY from --grpc_max_connection_age_s, "
          "seconds its calls under way get to finish before it closes; 0: as "
          "long as they need.");
ABSL_FLAG(int, grpc_max_concurrent_streams, 256,
          "Calls one client connection may have open at once; more wait in "
          "the client.");
ABSL_FLAG(int, grpc_min_ping_interval_s, 60,
          "HTTP/2 pings from a client closer than this without data are "
          "strikes; --grpc_max_ping_strikes of them close the connection.");
ABSL_FLAG(int, grpc_max_ping_strikes, 2,
          "Strikes (see --grpc_min_ping_interval_s) before the server sends "
          "GOAWAY; 0: unlimited.");
ABSL_FLAG(bool, grpc_permit_pings_without_calls, false,
          "Accept keepalive pings on connections with no call open.");
ABSL_FLAG(int, grpc_max_connection_idle_s, 0,
          "Seconds after which a connection with no call gets a GOAWAY; 0: "
          "never.");
ABSL_FLAG(int, grpc_max_metadata_bytes, 16 << 10,
          "Largest request metadata (headers) accepted, in bytes.");
ABSL_FLAG(int, max_stream_frames_in_flight, 16,
          "Frames of one SegmentStream processed or waiting for the client "
          "to read their answers; the stream reads no more until one is "
          "written, so a client that never reads holds bounded memory.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of the gRPC port; with --tls_key_file the "
          "port speaks TLS only. Re-read every --tls_refresh_s.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CAs: clients must present a certificate they signed (mTLS).");
ABSL_FLAG(int, tls_refresh_s, 60,
          "Seconds between re-reads of the TLS files, so that a rotated "
          "certificate is used without a restart.");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "Bearer tokens and their rights, one '<token> <right>[,<right>]' per "
          "line (rights: inference, metadata, admin, all); calls without a "
          "known token get UNAUTHENTICATED, without the right "
          "PERMISSION_DENIED. Health and reflection stay open. Empty: no "
          "tokens needed. Use with TLS.");
ABSL_FLAG(bool, deadline_admission, true,
          "Refuse at arrival (RESOURCE_EXHAUSTED, saying by how much) a "
          "request whose deadline its model's queue would miss, judged from "
          "the batch times so far, instead of queueing it to time out.");
ABSL_FLAG(int, batch_timeout_s, 60,
          "A batch that runs longer fails its requests UNAVAILABLE and takes "
          "its instance out of service (readiness goes NOT_SERVING when the "
          "default model has none left); 0: no limit.");
ABSL_FLAG(int, preprocess_threads, 2,
          "Worker threads for decoding, resizing and mask encoding.");
ABSL_FLAG(int, cpu_cores, 0,
          "CPU cores the server may use, e.g. a container's CPU limit (the "
          "Kubernetes manifests pass limits.cpu); 0: the CPUs of the process's "
          "affinity mask, capped by its cgroup CPU quota.");
ABSL_FLAG(int, intra_op_threads, 0,
          "LibTorch intra-op threads per model run (0: one per core of "
          "--cpu_cores).");
ABSL_FLAG(int, cpu_inference_nice, 10,
          "Nice value (0..19) of the threads that run CPU models: above 0 "
          "they yield the cores to the threads that receive, refuse and "
          "decode requests, which keeps refusals fast on busy cores.");
ABSL_FLAG(int64_t, cpu_allocator_cache_mb, 2048,
          "Freed CPU tensor memory kept for reuse, in MiB (0: none). Saves "
          "page-faulting large activations in again on every batch.");

namespace {

int signal_pipe[2] = {-1, -1};

void OnStopSignal(int signal_number) {
  const unsigned char byte = static_cast<unsigned char>(signal_number);
  // write() is async-signal-safe; a second signal while the first is being
  // handled only adds a byte nobody reads.
  [[maybe_unused]] ssize_t written = write(signal_pipe[1], &byte, 1);
}

// SIGTERM and SIGINT start the drain. A handler, not a signal mask: some
// libraries start threads before main (OpenBLAS's pool starts when the
// library loads), and a signal delivered to one of those with only a mask
// in place would kill the process (exit 143) instead of draining it.
absl::Status InstallStopSignals() {
  if (pipe(signal_pipe) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  return absl::OkStatus();
}

// Blocks until SIGTERM or SIGINT; returns its number.
int AwaitStopSignal() {
  unsigned char signal_number = 0;
  while (read(signal_pipe[0], &signal_number, 1) != 1 && errno == EINTR) {
  }
  return signal_number;
}

// The flags' values that no type checks: INVALID_ARGUMENT saying which and
// what is allowed.
absl::Status CheckFlags() {
  if (const int nice = absl::GetFlag(FLAGS_cpu_inference_nice);
      nice < 0 || nice > 19) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpu_inference_nice is ", nice,
                     "; allowed: 0 (the server's own priority) to 19 (the "
                     "lowest)"));
  }
  const std::string mode = absl::GetFlag(FLAGS_model_control_mode);
  if (mode != "none" && mode != "poll" && mode != "explicit") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model_control_mode is '", mode, "'; allowed: none, poll, explicit"));
  }
  if (!absl::GetFlag(FLAGS_load_model).empty() && mode != "explicit") {
    return absl::InvalidArgumentError(
        "--load_model needs --model_control_mode=explicit (the other modes "
        "load every model)");
  }
  if (absl::GetFlag(FLAGS_repository_poll_s) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--repository_poll_s is ", absl::GetFlag(FLAGS_repository_poll_s),
        "; allowed: 1 or more seconds"));
  }
  // gRPC takes connection ages in int milliseconds.
  constexpr int kMaxAgeS = std::numeric_limits<int>::max() / 1000;
  auto in_ms_range = [](int seconds) {
    return seconds >= 0 && seconds <= kMaxAgeS;
  };
  if (absl::GetFlag(FLAGS_cpu_cores) < 0 ||
      absl::GetFlag(FLAGS_intra_op_threads) < 0 ||
      absl::GetFlag(FLAGS_drain_timeout_s) < 0 ||
      absl::GetFlag(FLAGS_grpc_max_ping_strikes) < 0 ||
      !in_ms_range(absl::GetFlag(FLAGS_grpc_max_connection_age_s)) ||
      !in_ms_range(absl::GetFlag(FLAGS_grpc_max_connection_age_grace_s)) ||
      !in_ms_range(absl::GetFlag(FLAGS_grpc_max_connection_idle_s)) ||
      !in_ms_range(absl::GetFlag(FLAGS_grpc_min_ping_interval_s))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cpu_cores, --intra_op_threads, --drain_timeout_s and "
        "--grpc_max_ping_strikes must be 0 or more, and "
        "--grpc_max_connection_age{,_grace}_s, --grpc_max_connection_idle_s "
        "and --grpc_min_ping_interval_s 0..",
        kMaxAgeS));
  }
  if (absl::GetFlag(FLAGS_http_port) < -1 ||
      absl::GetFlag(FLAGS_http_port) > 65535 ||
      absl::GetFlag(FLAGS_http_max_body_bytes) < 1 ||
      absl::GetFlag(FLAGS_http_max_header_bytes) < 1024 ||
      absl::GetFlag(FLAGS_http_timeout_s) < 1) {
    return absl::InvalidArgumentError(
        "--http_port must be -1 (no HTTP) to 65535, --http_max_body_bytes 1 "
        "or more, --http_max_header_bytes 1024 or more and --http_timeout_s "
        "1 or more");
  }
  if (absl::GetFlag(FLAGS_grpc_max_concurrent_streams) < 1 ||
      absl::GetFlag(FLAGS_max_stream_frames_in_flight) < 1 ||
      absl::GetFlag(FLAGS_grpc_max_metadata_bytes) < 1024) {
    return absl::InvalidArgumentError(
        "--grpc_max_concurrent_streams and --max_stream_frames_in_flight "
        "must be 1 or more, and --grpc_max_metadata_bytes 1024 or more");
  }
  return absl::OkStatus();
}

segserve::ModelControlMode ControlMode() {
  const std::string mode = absl::GetFlag(FLAGS_model_control_mode);
  return mode == "poll"       ? segserve::ModelControlMode::kPoll
         : mode == "explicit" ? segserve::ModelControlMode::kExplicit
                              : segserve::ModelControlMode::kNone;
}

// "host:port" for a port flag, or "" for -1 (off).
std::string Address(const std::string& host, int port) {
  return port < 0 ? "" : absl::StrCat(host, ":", port);
}

// TLS for both ports and the bearer tokens, from their files.
absl::Status ApplySecurityFlags(segserve::Server::Options* options) {
  if (!absl::GetFlag(FLAGS_tls_cert_file).empty() ||
      !absl::GetFlag(FLAGS_tls_key_file).empty() ||
      !absl::GetFlag(FLAGS_tls_client_ca_file).empty()) {
    segserve::TlsFiles tls;
    tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
    tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
    tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
    tls.refresh = absl::Seconds(absl::GetFlag(FLAGS_tls_refresh_s));
    SEGSERVE_ASSIGN_OR_RETURN(options->grpc.credentials,
                              segserve::TlsServerCredentials(tls));
    // The HTTP port serves the same certificate, and rotates it as often.
    options->http.server.tls_cert_file = tls.cert_file;
    options->http.server.tls_key_file = tls.key_file;
    options->http.server.tls_client_ca_file = tls.client_ca_file;
    options->http.server.tls_refresh = tls.refresh;
  }
  if (const std::string tokens = absl::GetFlag(FLAGS_auth_tokens_file);
      !tokens.empty()) {
    SEGSERVE_ASSIGN_OR_RETURN(options->requests.authorizer,
                              segserve::TokenAuthorizer::FromFile(tokens));
  }
  return absl::OkStatus();
}

absl::StatusOr<segserve::Server::Options> ServerOptionsFromFlags() {
  segserve::Server::Options options;
  const std::string host = absl::GetFlag(FLAGS_host);
  options.models.repository = absl::GetFlag(FLAGS_model_repository);
  options.models.default_model = absl::GetFlag(FLAGS_default_model);
  options.models.control_mode = ControlMode();
  options.models.startup_models = absl::GetFlag(FLAGS_load_model);
  options.models.poll = absl::Seconds(absl::GetFlag(FLAGS_repository_poll_s));
  options.grpc.address = Address(host, absl::GetFlag(FLAGS_grpc_port));
  options.metrics_address = Address(absl::GetFlag(FLAGS_metrics_host).empty()
                                        ? host
                                        : absl::GetFlag(FLAGS_metrics_host),
                                    absl::GetFlag(FLAGS_metrics_port));
  options.http.address = Address(host, absl::GetFlag(FLAGS_http_port));
  options.http.server.max_body_bytes = absl::GetFlag(FLAGS_http_max_body_bytes);
  options.http.server.max_header_bytes =
      absl::GetFlag(FLAGS_http_max_header_bytes);
  options.http.server.io_timeout =
      absl::Seconds(absl::GetFlag(FLAGS_http_timeout_s));
  options.http.playground = absl::GetFlag(FLAGS_http_playground);
  options.requests.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  options.requests.reduced_jpeg_decode =
      absl::GetFlag(FLAGS_reduced_jpeg_decode);
  options.grpc.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.requests.preprocess_threads = absl::GetFlag(FLAGS_preprocess_threads);
  options.requests.drain_timeout =
      absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s));
  options.grpc.max_connection_age =
      absl::Seconds(absl::GetFlag(FLAGS_grpc_max_connection_age_s));
  options.grpc.max_connection_age_grace =
      absl::Seconds(absl::GetFlag(FLAGS_grpc_max_connection_age_grace_s));
  options.grpc.max_concurrent_streams =
      absl::GetFlag(FLAGS_grpc_max_concurrent_streams);
  options.grpc.min_ping_interval =
      absl::Seconds(absl::GetFlag(FLAGS_grpc_min_ping_interval_s));
  options.grpc.max_ping_strikes = absl::GetFlag(FLAGS_grpc_max_ping_strikes);
  options.grpc.permit_pings_without_calls =
      absl::GetFlag(FLAGS_grpc_permit_pings_without_calls);
  options.grpc.max_connection_idle =
      absl::Seconds(absl::GetFlag(FLAGS_grpc_max_connection_idle_s));
  options.grpc.max_metadata_bytes =
      absl::GetFlag(FLAGS_grpc_max_metadata_bytes);
  options.grpc.max_stream_frames_in_flight =
      absl::GetFlag(FLAGS_max_stream_frames_in_flight);
  options.requests.deadline_admission = absl::GetFlag(FLAGS_deadline_admission);
  options.models.batch_timeout =
      absl::Seconds(absl::GetFlag(FLAGS_batch_timeout_s));
  options.models.loader = segserve::TorchModelLoader(
      {.cpu_nice = absl::GetFlag(FLAGS_cpu_inference_nice),
       .fused_mask_upsampling = absl::GetFlag(FLAGS_fused_mask_upsampling)});
  options.models.cuda_device_count = segserve::CudaDeviceCount();
  SEGSERVE_RETURN_IF_ERROR(ApplySecurityFlags(&options));
  return options;
}

int CannotStart(const absl::Status& status) {
  SEGSERVE_LOG(Error) << "cannot start: " << status.message();
  return 1;
}

// Keeps glibc from handing each request's buffers (a 512x512 input is 768
// KiB, its decoded image as much) back to the kernel when they are freed and
// faulting them in again for the next request: measured at concurrency 1,
// 330 to 370 page faults and 2 to 3 ms of preprocessing per request, against
// 6 faults and 0.13 ms with these settings. Freed memory up to 32 MiB per
// malloc arena stays mapped; allocations of 16 MiB and more (images far
// larger than a model's input) still map and unmap. Environment settings
// (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) take precedence. Before
// any thread starts.
void KeepRequestBuffersMapped() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) {
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
  }
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) {
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
  }
}

}  // namespace

int main(int argc, char** argv) {
  KeepRequestBuffersMapped();
  absl::SetProgramUsageMessage(
      "Serves semantic segmentation models over gRPC and HTTP.\n"
      "Usage: segserve [--model_repository DIR] [--grpc_port N] ...");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = InstallStopSignals(); !s.ok()) return CannotStart(s);
  if (absl::Status s = CheckFlags(); !s.ok()) return CannotStart(s);
  segserve::SetTorchThreads(absl::GetFlag(FLAGS_intra_op_threads),
                            absl::GetFlag(FLAGS_cpu_cores));
  if (const int64_t cache_mb = absl::GetFlag(FLAGS_cpu_allocator_cache_mb);
      cache_mb > 0) {
    segserve::InstallCachingCpuAllocator(cache_mb << 20);
  }
  SEGSERVE_LOG(Info) << segserve::TorchRuntimeSummary();

  absl::StatusOr<segserve::Server::Options> options = ServerOptionsFromFlags();
  if (!options.ok()) return CannotStart(options.status());
  auto server = segserve::Server::Create(*std::move(options));
  if (!server.ok()) return CannotStart(server.status());
  // Machine-readable line for scripts and tests that start the binary,
  // once every model has been tried; signals are taken meanwhile.
  std::thread announcer([s = server->get()] {
    s->WaitForModels();
    SEGSERVE_LOG(Info) << "ready grpc_port=" << s->grpc_port()
                       << " metrics_port=" << s->metrics_port()
                       << " http_port=" << s->http_port();
  });

  const int signal_number = AwaitStopSignal();
  SEGSERVE_LOG(Info) << "received " << strsignal(signal_number)
                     << ", shutting down";
  const bool drained = (*server)->Drain();
  announcer.join();
  SEGSERVE_LOG(Info) << (drained ? "stopped cleanly"
                                 : "stopped after the drain timeout");
  // Every accepted request is answered. Exit without gRPC's shutdown: the
  // kernel closes every connection, and a call still on its way in ends
  // UNAVAILABLE, which clients retry, where gRPC 1.51's Shutdown would end
  // it CANCELLED. Nothing is left to flush: the log
  // writes unbuffered, and the models hold no files open for writing.
  std::fflush(nullptr);
  std::_Exit(0);
}
