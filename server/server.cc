#include "server/server.h"

#include <algorithm>
#include <exception>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/registry.h"
#include "server/api/health.h"
#include "server/api/inference_service.h"
#include "server/api/segmentation_service.h"
#include "server/core/inference_core.h"
#include "server/core/metrics.h"
#include "server/core/model_repository.h"
#include "server/core/thread_pool.h"
#include "server/core/torch_loader.h"
#include "server/metrics_endpoint.h"
#include "server/pipeline/segment_processor.h"

namespace segserve {

Server::Server(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(Options options) {
  if (!options.loader) options.loader = TorchModelLoader();
  std::unique_ptr<Server> server(new Server(std::move(options)));
  const Options& opts = server->options_;

  server->registry_ = std::make_shared<prometheus::Registry>();
  server->metrics_ = std::make_unique<Metrics>(server->registry_.get());
  if (!opts.metrics_address.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        MetricsEndpoint::Create(opts.metrics_address, server->registry_.get());
    if (!endpoint.ok()) return endpoint.status();
    server->metrics_endpoint_ = *std::move(endpoint);
    server->metrics_port_ = server->metrics_endpoint_->port();
  }

  server->pool_ = std::make_unique<ThreadPool>(opts.preprocess_threads);
  ModelRepository::Options repository_options;
  repository_options.root = opts.model_repository;
  repository_options.default_model = opts.default_model;
  repository_options.loader = opts.loader;
  repository_options.cuda_device_count = opts.cuda_device_count;
  repository_options.clock = RealClock::Get();
  repository_options.metrics = server->metrics_.get();
  repository_options.batch_timeout = opts.batch_timeout;
  repository_options.control_mode = opts.model_control_mode;
  repository_options.startup_models = opts.startup_models;
  absl::StatusOr<std::unique_ptr<ModelRepository>> repository =
      ModelRepository::Create(std::move(repository_options));
  if (!repository.ok()) return repository.status();
  server->repository_ = *std::move(repository);

  SegmentProcessor::Options processor_options;
  processor_options.max_image_pixels = opts.max_image_pixels;
  InferenceCore::Options core_options;
  core_options.deadline_admission = opts.deadline_admission;
  server->core_ = std::make_unique<InferenceCore>(
      server->repository_.get(), server->pool_.get(), server->metrics_.get(),
      RealClock::Get(), core_options);
  server->processor_ = std::make_unique<SegmentProcessor>(processor_options,
                                                          server->core_.get());
  server->service_ = std::make_unique<SegmentationService>(
      server->processor_.get(), server->core_.get(),
      std::max(1, opts.max_stream_frames_in_flight), opts.authorizer.get());
  server->inference_service_ = std::make_unique<InferenceService>(
      server->processor_.get(), server->core_.get(), server->repository_.get(),
      opts.authorizer.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(opts.grpc_address,
                           opts.credentials != nullptr
                               ? opts.credentials
                               : grpc::InsecureServerCredentials(),
                           &server->grpc_port_);
  builder.SetMaxReceiveMessageSize(opts.max_message_bytes);
  builder.SetMaxSendMessageSize(opts.max_message_bytes);
  if (opts.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(opts.max_connection_age)));
  }
  if (opts.max_connection_age_grace > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(
                                   opts.max_connection_age_grace)));
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             std::max(1, opts.max_concurrent_streams));
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      static_cast<int>(absl::ToInt64Milliseconds(opts.min_ping_interval)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                             opts.max_ping_strikes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                             opts.permit_pings_without_calls ? 1 : 0);
  if (opts.max_connection_idle > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_IDLE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(opts.max_connection_idle)));
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE,
                             opts.max_metadata_bytes);
  builder.RegisterService(server->service_.get());
  builder.RegisterService(server->inference_service_.get());
  if (!server->options_.interceptors.empty()) {
    builder.experimental().SetInterceptorCreators(
        std::move(server->options_.interceptors));
  }
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on ", opts.grpc_address,
                     "; is the port in use? choose another --grpc_port"));
  }
  server->health_ = std::make_unique<HealthFrontend>(
      server->grpc_server_->GetHealthCheckService());
  SEGSERVE_LOG(Info) << "listening grpc_port=" << server->grpc_port_
                     << " metrics_port=" << server->metrics_port_
                     << "; loading the models";
  // Bound first, loaded second: probes see a live server that is not ready
  // yet instead of a refused connection for as long as the models load.
  server->loader_ = std::thread([s = server.get()] { s->LoadModels(); });
  return server;
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
  // Readiness follows the models from now on: a version whose instances
  // all hung stops being ready. In poll mode the repository is rescanned
  // here too (the lock is let go meanwhile: a load takes a while).
  absl::Time next_poll = absl::Now() + options_.repository_poll;
  while (!mu_.AwaitWithTimeout(absl::Condition(&draining_), absl::Seconds(1))) {
    if (options_.model_control_mode == ModelControlMode::kPoll &&
        absl::Now() >= next_poll) {
      mu_.Unlock();
      repository_->Poll();
      mu_.Lock();
      next_poll = absl::Now() + options_.repository_poll;
      if (draining_) break;
    }
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
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    health_->SetReady(false);
  }
  repository_->CancelLoading();
  const absl::Time deadline = absl::Now() + options_.drain_timeout;
  SEGSERVE_LOG(Info) << "draining " << core_->inflight()
                     << " request(s), up to "
                     << absl::FormatDuration(options_.drain_timeout);
  core_->StartDraining();
  // Open streams end at their next frame, so that their clients move too.
  service_->DrainStreams();
  // The models keep taking items until the accepted requests are done: a
  // request still being decoded joins its queue afterwards, and must not be
  // refused there.
  drained_ = core_->WaitForIdle(deadline) &&
             service_->WaitForCallsDone(deadline) &&
             inference_service_->WaitForCallsDone(deadline);
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
  if (loader_.joinable()) loader_.join();
  repository_->Shutdown();
  grpc_server_->Wait();
  // A load still under way has finished (its call waited for it).
  inference_service_->StopModelControl();
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
