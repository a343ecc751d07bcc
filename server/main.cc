// segserve: the batching gRPC segmentation server.
#include <csignal>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "model/cpu_allocator.h"
#include "model/torch_model.h"
#include "model/torch_runtime.h"
#include "server/server.h"

ABSL_FLAG(std::string, model_repository, "model_repository",
          "Directory of models: <name>/config.pbtxt and <name>/<version>/"
          "model.pt.");
ABSL_FLAG(std::string, default_model, "scenes-sgcpnet",
          "Model used when a request names none; empty: requests must name "
          "one.");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on.");
ABSL_FLAG(int, grpc_port, 50051, "gRPC port (0 picks a free port).");
ABSL_FLAG(int, metrics_port, 8002,
          "Prometheus /metrics port (0 picks a free port, -1 disables).");
ABSL_FLAG(int64_t, max_image_pixels, 64LL << 20,
          "Largest input image, in pixels (width * height), accepted.");
ABSL_FLAG(int, max_message_bytes, 64 << 20,
          "Largest gRPC message, in bytes, received or sent.");
ABSL_FLAG(int, drain_timeout_s, 30,
          "On SIGTERM/SIGINT, seconds to let accepted requests finish.");
ABSL_FLAG(int, preprocess_threads, 2,
          "Worker threads for decoding, resizing and mask encoding.");
ABSL_FLAG(int, intra_op_threads, 0,
          "LibTorch intra-op threads per model run (0: one per core).");
ABSL_FLAG(int64_t, cpu_allocator_cache_mb, 2048,
          "Freed CPU tensor memory kept for reuse, in MiB (0: none). Saves "
          "page-faulting large activations in again on every batch.");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves semantic segmentation models over gRPC.\n"
      "Usage: segserve [--model_repository DIR] [--grpc_port N] ...");
  absl::ParseCommandLine(argc, argv);

  // Signals are taken by sigwait below, so block them in every thread
  // started from here on.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  segserve::SetTorchThreads(absl::GetFlag(FLAGS_intra_op_threads));
  if (const int64_t cache_mb = absl::GetFlag(FLAGS_cpu_allocator_cache_mb);
      cache_mb > 0) {
    segserve::InstallCachingCpuAllocator(cache_mb << 20);
  }
  SEGSERVE_LOG(Info) << segserve::TorchRuntimeSummary();

  segserve::Server::Options options;
  options.model_repository = absl::GetFlag(FLAGS_model_repository);
  options.default_model = absl::GetFlag(FLAGS_default_model);
  options.grpc_address = absl::StrCat(absl::GetFlag(FLAGS_host), ":",
                                      absl::GetFlag(FLAGS_grpc_port));
  const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.metrics_address =
      metrics_port < 0
          ? ""
          : absl::StrCat(absl::GetFlag(FLAGS_host), ":", metrics_port);
  options.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.preprocess_threads = absl::GetFlag(FLAGS_preprocess_threads);
  options.drain_timeout = absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s));
  options.cuda_device_count = segserve::CudaDeviceCount();

  auto server = segserve::Server::Create(options);
  if (!server.ok()) {
    SEGSERVE_LOG(Error) << "cannot start: " << server.status().message();
    return 1;
  }
  // Machine-readable line for scripts and tests that start the binary.
  SEGSERVE_LOG(Info) << "ready grpc_port=" << (*server)->grpc_port()
                     << " metrics_port=" << (*server)->metrics_port();

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  SEGSERVE_LOG(Info) << "received " << strsignal(signal_number)
                     << ", shutting down";
  const bool drained = (*server)->Shutdown();
  server->reset();
  SEGSERVE_LOG(Info) << (drained ? "stopped cleanly"
                                 : "stopped after the drain timeout");
  return 0;
}
