#include "server/server.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/registry.h"
#include "server/metrics.h"
#include "server/metrics_endpoint.h"
#include "server/model_repository.h"
#include "server/segment_processor.h"
#include "server/segmentation_service.h"
#include "server/thread_pool.h"
#include "server/torch_loader.h"

namespace segserve {
constexpr char kServiceName[] = "segserve.v1.Segmentation";

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
  absl::StatusOr<std::unique_ptr<ModelRepository>> repository =
      ModelRepository::Create(std::move(repository_options));
  if (!repository.ok()) return repository.status();
  server->repository_ = *std::move(repository);

  SegmentProcessor::Options processor_options;
  processor_options.max_image_pixels = opts.max_image_pixels;
  server->processor_ = std::make_unique<SegmentProcessor>(
      processor_options, server->repository_.get(), server->pool_.get(),
      server->metrics_.get(), RealClock::Get());
  server->service_ = std::make_unique<SegmentationService>(
      server->processor_.get(), server->repository_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(opts.grpc_address, grpc::InsecureServerCredentials(),
                           &server->grpc_port_);
  builder.SetMaxReceiveMessageSize(opts.max_message_bytes);
  builder.SetMaxSendMessageSize(opts.max_message_bytes);
  builder.RegisterService(server->service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on ", opts.grpc_address,
                     "; is the port in use? choose another --grpc_port"));
  }
  grpc::HealthCheckServiceInterface* health =
      server->grpc_server_->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(kServiceName, true);
  SEGSERVE_LOG(Info) << "serving gRPC on port " << server->grpc_port_
                     << (server->metrics_endpoint_
                             ? absl::StrCat(", metrics on port ",
                                            server->metrics_port_)
                             : std::string());
  return server;
}

bool Server::Shutdown() {
  if (shut_down_ || grpc_server_ == nullptr) return drained_;
  shut_down_ = true;
  // Refuse new calls, then report NOT_SERVING: a client that sees
  // NOT_SERVING can rely on being refused.
  service_->StartDraining();
  grpc_server_->GetHealthCheckService()->Shutdown();
  SEGSERVE_LOG(Info) << "draining " << processor_->inflight()
                     << " request(s), up to "
                     << absl::FormatDuration(options_.drain_timeout);
  // The models stop taking requests only once the accepted ones are done:
  // a request still being decoded when the drain starts joins its queue
  // afterwards, and must not be refused there.
  drained_ = processor_->WaitForIdle(absl::Now() + options_.drain_timeout);
  repository_->Shutdown();
  if (!drained_) {
    SEGSERVE_LOG(Warning) << processor_->inflight()
                          << " request(s) still running after the drain "
                             "timeout; cancelling them";
  }
  grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  grpc_server_->Wait();
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
