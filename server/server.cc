#include "server/server.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/registry.h"
#include "server/api/health.h"
#include "server/api/inference_service.h"
#include "server/api/rest_service.h"
#include "server/api/segmentation_service.h"
#include "server/core/inference_core.h"
#include "server/core/metrics.h"
#include "server/core/model_repository.h"
#include "server/core/repository_poller.h"
#include "server/core/thread_pool.h"
#include "server/core/torch_loader.h"
#include "server/http/http_server.h"
#include "server/metrics_endpoint.h"
#include "server/pipeline/segment_processor.h"
#include "server/service/serving_api.h"

namespace segserve {

Server::Server(Options options) : options_(std::move(options)) {}

namespace {

// "host:port" as its parts; INVALID_ARGUMENT naming `what` otherwise.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(
    const std::string& address, const char* what) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", what, " address '", address, "' is not host:port (0..65535)"));
  }
  std::string host = address.substr(0, colon);
  // "[::1]:8000": the brackets are the address's, not the host's.
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(std::move(host), port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Create(Options options) {
  if (!options.models.loader) options.models.loader = TorchModelLoader();
  std::unique_ptr<Server> server(new Server(std::move(options)));
  SEGSERVE_RETURN_IF_ERROR(server->StartMetrics());
  SEGSERVE_RETURN_IF_ERROR(server->StartServing());
  SEGSERVE_RETURN_IF_ERROR(server->StartGrpc());
  SEGSERVE_RETURN_IF_ERROR(server->StartHttp());
  SEGSERVE_LOG(Info) << "listening grpc_port=" << server->grpc_port_
                     << " http_port=" << server->http_port_
                     << " metrics_port=" << server->metrics_port_
                     << "; loading the models";
  // Bound first, loaded second: probes see a live server that is not ready
  // yet instead of a refused connection for as long as the models load.
  server->loader_ = std::thread([s = server.get()] { s->LoadModels(); });
  return server;
}

absl::Status Server::StartMetrics() {
  registry_ = std::make_shared<prometheus::Registry>();
  metrics_ = std::make_unique<Metrics>(registry_.get());
  if (options_.metrics_address.empty()) return absl::OkStatus();
  SEGSERVE_ASSIGN_OR_RETURN(auto address,
                            SplitHostPort(options_.metrics_address, "metrics"));
  SEGSERVE_ASSIGN_OR_RETURN(
      metrics_endpoint_,
      MetricsEndpoint::Create(address.first, address.second, registry_.get()));
  metrics_port_ = metrics_endpoint_->port();
  return absl::OkStatus();
}

absl::Status Server::StartServing() {
  const Options& opts = options_;
  pool_ = std::make_unique<ThreadPool>(opts.requests.preprocess_threads);
  ModelRepository::Options repository_options;
  repository_options.root = opts.models.repository;
  repository_options.default_model = opts.models.default_model;
  repository_options.loader = opts.models.loader;
  repository_options.cuda_device_count = opts.models.cuda_device_count;
  repository_options.clock = RealClock::Get();
  repository_options.metrics = metrics_.get();
  repository_options.batch_timeout = opts.models.batch_timeout;
  repository_options.control_mode = opts.models.control_mode;
  repository_options.startup_models = opts.models.startup_models;
  SEGSERVE_ASSIGN_OR_RETURN(
      repository_, ModelRepository::Create(std::move(repository_options)));

  InferenceCore::Options core_options;
  core_options.deadline_admission = opts.requests.deadline_admission;
  core_ = std::make_unique<InferenceCore>(repository_.get(), pool_.get(),
                                          metrics_.get(), RealClock::Get(),
                                          core_options);
  SegmentProcessor::Options processor_options;
  processor_options.max_image_pixels = opts.requests.max_image_pixels;
  processor_options.reduced_jpeg_decode = opts.requests.reduced_jpeg_decode;
  processor_ =
      std::make_unique<SegmentProcessor>(processor_options, core_.get());
  api_ = std::make_unique<ServingApi>(processor_.get(), core_.get(),
                                      repository_.get(),
                                      opts.requests.authorizer.get());
  return absl::OkStatus();
}

absl::Status Server::StartGrpc() {
  const Options& opts = options_;
  service_ = std::make_unique<SegmentationService>(
      api_.get(), std::max(1, opts.grpc.max_stream_frames_in_flight));
  inference_service_ = std::make_unique<InferenceService>(api_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(opts.grpc.address,
                           opts.grpc.credentials != nullptr
                               ? opts.grpc.credentials
                               : grpc::InsecureServerCredentials(),
                           &grpc_port_);
  builder.SetMaxReceiveMessageSize(opts.grpc.max_message_bytes);
  builder.SetMaxSendMessageSize(opts.grpc.max_message_bytes);
  if (opts.grpc.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(
                                   opts.grpc.max_connection_age)));
  }
  if (opts.grpc.max_connection_age_grace > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(
                                   opts.grpc.max_connection_age_grace)));
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             std::max(1, opts.grpc.max_concurrent_streams));
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      static_cast<int>(absl::ToInt64Milliseconds(opts.grpc.min_ping_interval)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                             opts.grpc.max_ping_strikes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                             opts.grpc.permit_pings_without_calls ? 1 : 0);
  if (opts.grpc.max_connection_idle > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(
                                   opts.grpc.max_connection_idle)));
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                             opts.grpc.max_metadata_bytes);
  builder.RegisterService(service_.get());
  builder.RegisterService(inference_service_.get());
  if (!options_.grpc.interceptors.empty()) {
    builder.experimental().SetInterceptorCreators(
        std::move(options_.grpc.interceptors));
  }
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on ", opts.grpc.address,
                     "; is the port in use? choose another --grpc_port"));
  }
  health_ =
      std::make_unique<HealthFrontend>(grpc_server_->GetHealthCheckService());
  return absl::OkStatus();
}

absl::Status Server::StartHttp() {
  if (options_.http.address.empty()) return absl::OkStatus();
  SEGSERVE_ASSIGN_OR_RETURN(auto address,
                            SplitHostPort(options_.http.address, "HTTP"));
  HttpServer::Options http = options_.http.server;
  http.host = address.first;
  http.port = address.second;
  rest_service_ =
      std::make_unique<RestService>(api_.get(), options_.http.playground);
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Create(
      std::move(http),
      [rest = rest_service_.get()](HttpRequest request, HttpReply reply) {
        rest->Handle(std::move(request), std::move(reply));
      });
  if (!server.ok()) {
    return absl::Status(
        server.status().code(),
        absl::StrCat("cannot serve HTTP: ", server.status().message(),
                     " (choose another --http_port)"));
  }
  http_server_ = *std::move(server);
  http_port_ = http_server_->port();
  api_->OnDrain([http = http_server_.get()] { http->StartDraining(); });
  return absl::OkStatus();
}

void Server::LoadModels() {
  repository_->LoadAll();
  absl::MutexLock lock(&mu_);
  models_loaded_ = true;
  if (draining_) return;
  bool ready = repository_->IsReady();
  health_->SetReady(ready);
  if (ready) {
    SEGSERVE_LOG(Info) << "models loaded; ready";
  } else {
    SEGSERVE_LOG(Error) << "models loaded, but "
                        << (repository_->default_model().empty()
                                ? std::string("none is ready")
                                : absl::StrCat("the default model '",
                                               repository_->default_model(),
                                               "' is not ready"))
                        << "; readiness stays NOT_SERVING";
  }
  // In poll mode the repository follows its files until the drain.
  std::optional<RepositoryPoller> poller;
  if (options_.models.control_mode == ModelControlMode::kPoll) {
    poller.emplace(repository_.get(), options_.models.poll);
  }
  // Readiness follows the models from now on: a version whose instances
  // all hung stops being ready.
  while (!mu_.AwaitWithTimeout(absl::Condition(&draining_), absl::Seconds(1))) {
    const bool now_ready = repository_->IsReady();
    if (now_ready == ready) continue;
    ready = now_ready;
    health_->SetReady(ready);
    SEGSERVE_LOG(Warning) << "readiness is now "
                          << (ready ? "SERVING" : "NOT_SERVING");
  }
}

bool Server::WaitForModels() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&models_loaded_));
  return repository_->IsReady();
}

bool Server::Drain() {
  if (drain_started_ || grpc_server_ == nullptr) return drained_;
  drain_started_ = true;
  // New calls are refused before readiness says so: a client that has seen
  // NOT_SERVING gets UNAVAILABLE, never a queue that the drain waits on.
  // Open streams end at their next frame, so that their clients move too;
  // HTTP answers close their connections.
  api_->StartDraining();
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    health_->SetReady(false);
  }
  repository_->CancelLoading();
  const absl::Time deadline = absl::Now() + options_.requests.drain_timeout;
  SEGSERVE_LOG(Info) << "draining " << core_->inflight()
                     << " request(s), up to "
                     << absl::FormatDuration(options_.requests.drain_timeout);
  // The models keep taking items until the accepted requests are done: a
  // request still being decoded joins its queue afterwards, and must not be
  // refused there.
  drained_ = core_->WaitForIdle(deadline) && api_->WaitForCallsDone(deadline);
  if (!drained_) {
    SEGSERVE_LOG(Warning) << core_->inflight()
                          << " request(s) still running after the drain "
                             "timeout";
  }
  return drained_;
}

bool Server::Shutdown() {
  if (shut_down_ || grpc_server_ == nullptr) return drained_;
  Drain();
  shut_down_ = true;
  // What is still open now is a refusal on its way out, or a request past
  // the drain timeout: gRPC cancels it.
  grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  http_server_.reset();  // Closes its connections; nothing is left to answer.
  if (loader_.joinable()) loader_.join();
  repository_->Shutdown();
  grpc_server_->Wait();
  // A load still under way has finished (its call waited for it).
  api_->StopModelControl();
  return drained_;
}

Server::~Server() {
  Shutdown();
  // Models (and their threads) go before the pool that finishes their
  // requests, and the pool before the processor its tasks call into.
  repository_.reset();
  pool_.reset();
}

}  // namespace segserve
