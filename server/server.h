#ifndef SEGSERVE_SERVER_SERVER_H_
#define SEGSERVE_SERVER_SERVER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/api/health.h"
#include "server/core/model_repository.h"
#include "server/core/served_model.h"
#include "server/http/http_server.h"

namespace grpc {
class Server;
}  // namespace grpc
namespace prometheus {
class Registry;
}  // namespace prometheus

namespace segserve {

class InferenceCore;
class Metrics;
class MetricsEndpoint;
class RestService;
class SegmentProcessor;
class InferenceService;
class SegmentationService;
class ServingApi;
class ThreadPool;
class TokenAuthorizer;

// The whole segserve server: model repository, worker pool, the service
// layer and its frontends (gRPC: Segmentation, OIP, health, reflection;
// HTTP: KServe v2 REST and the image endpoint) and the Prometheus endpoint.
//
// Health (grpc.health.v1): kLivenessService is SERVING from the moment the
// port is bound until the server stops; kReadinessService, the overall ""
// and "segserve.v1.Segmentation" are NOT_SERVING while the models load and
// from the first moment of a drain, SERVING in between when the repository
// is ready (ModelRepository::IsReady).
class Server {
 public:
  static constexpr const char* kLivenessService =
      HealthFrontend::kLivenessService;
  static constexpr const char* kReadinessService =
      HealthFrontend::kReadinessService;

  // Grouped by concern: the models, the requests, each transport.
  struct Options {
    struct Models {
      std::string repository = "model_repository";
      std::string default_model;  // ModelRepository::Options::default_model.
      // ModelRepository::Options::control_mode and startup_models; kPoll
      // rescans the repository every `poll`.
      ModelControlMode control_mode = ModelControlMode::kNone;
      std::vector<std::string> startup_models;
      absl::Duration poll = absl::Seconds(15);
      ModelLoader loader;  // Empty: TorchModelLoader().
      int cuda_device_count = 0;
      // ServedModel::Options::batch_timeout; readiness follows the
      // instances left (checked every second).
      absl::Duration batch_timeout = absl::Seconds(60);
    } models;
    // What every frontend's requests share.
    struct Requests {
      int64_t max_image_pixels = 64LL << 20;
      // SegmentProcessor::Options::reduced_jpeg_decode.
      bool reduced_jpeg_decode = true;
      int preprocess_threads = 2;
      // InferenceCore::Options::deadline_admission.
      bool deadline_admission = true;
      absl::Duration drain_timeout = absl::Seconds(30);
      // Bearer tokens and their rights (--auth_tokens_file); null: no token
      // needed. Health and probes stay open either way.
      std::shared_ptr<const TokenAuthorizer> authorizer;
    } requests;
    struct Grpc {
      std::string address = "0.0.0.0:50051";  // Port 0: pick a free one.
      int max_message_bytes = 64 << 20;
      // gRPC's MAX_CONNECTION_AGE: each connection gets a GOAWAY after this
      // long (+-10% jitter), so that clients re-resolve and reach replicas
      // added since they connected. Zero: unbounded. Calls under way then
      // get the grace to finish before the connection closes (zero:
      // unbounded).
      absl::Duration max_connection_age = absl::ZeroDuration();
      absl::Duration max_connection_age_grace = absl::ZeroDuration();
      // What one client may hold (Debian's gRPC 1.51 predates the HTTP/2
      // rapid-reset fixes, so these are set here): streams open at once on
      // a connection; pings without data closer than min_ping_interval are
      // strikes, and max_ping_strikes of them close the connection; pings on
      // a connection with no call count as strikes unless permitted; an
      // idle connection closes after max_connection_idle (zero: never);
      // request metadata over max_metadata_bytes is refused; a
      // SegmentStream reads no further frame while
      // max_stream_frames_in_flight of its frames are being processed or
      // waiting for the client to read their answers.
      int max_concurrent_streams = 256;
      absl::Duration min_ping_interval = absl::Minutes(1);
      int max_ping_strikes = 2;
      bool permit_pings_without_calls = false;
      absl::Duration max_connection_idle = absl::ZeroDuration();
      int max_metadata_bytes = 16 << 10;
      int max_stream_frames_in_flight = 16;
      // The port's credentials (null: plaintext) and interceptors, for TLS
      // and per-call checks; the health and reflection services share them.
      std::shared_ptr<grpc::ServerCredentials> credentials;
      std::vector<std::unique_ptr<
          grpc::experimental::ServerInterceptorFactoryInterface>>
          interceptors;
    } grpc;
    // The HTTP frontend (KServe v2 REST and the image endpoint).
    struct Http {
      std::string address;  // "host:port" (port 0: any); empty: no HTTP.
      // Its limits and TLS files; host and port come from `address`.
      HttpServer::Options server;
      bool playground = true;  // The playground's page at /.
    } http;
    std::string metrics_address = "0.0.0.0:8002";  // Empty: no endpoint.
  };

  // Binds the ports and starts serving, then loads the models on a thread
  // of its own (health and ListModels answer meanwhile; requests get
  // UNAVAILABLE until their model is ready). Fails when the repository
  // cannot be listed or a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Create(Options options);
  ~Server();

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }  // 0: no HTTP frontend.
  int metrics_port() const { return metrics_port_; }

  // Blocks until every model has been tried (or Shutdown cut the loading
  // short). Returns whether the server is ready to serve.
  bool WaitForModels();

  // The first half of a graceful stop: readiness turns NOT_SERVING, new
  // requests are refused UNAVAILABLE by segserve itself (clients retry them
  // on other replicas) and open streams end, while the accepted requests
  // finish and their answers go out (up to drain_timeout). The transport
  // stays up meanwhile: gRPC 1.51's own shutdown ends calls that race it
  // CANCELLED, which clients do not retry. Returns whether every accepted
  // request was answered. Idempotent.
  bool Drain();

  // Drain, then stop gRPC (calls still open are cancelled) and the models.
  // Returns Drain's answer. Idempotent. A process that exits after Drain
  // need not call it: closing the process's sockets ends every call still
  // arriving UNAVAILABLE.
  bool Shutdown();

 private:
  explicit Server(Options options);
  // The steps of Create, in order.
  absl::Status StartMetrics();
  absl::Status StartServing();  // Repository, core, pipeline, service layer.
  absl::Status StartGrpc();
  absl::Status StartHttp();
  void LoadModels();

  Options options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<InferenceCore> core_;
  std::unique_ptr<SegmentProcessor> processor_;
  std::unique_ptr<ServingApi> api_;  // What every frontend calls.
  std::unique_ptr<SegmentationService> service_;
  std::unique_ptr<InferenceService> inference_service_;  // The OIP.
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<HealthFrontend> health_;
  std::unique_ptr<RestService> rest_service_;
  std::unique_ptr<HttpServer> http_server_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  int metrics_port_ = 0;

  absl::Mutex mu_;
  bool models_loaded_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loader_;  // Runs LoadModels; joined by Shutdown.

  // Drain and Shutdown are called from one thread at a time.
  bool drain_started_ = false;
  bool shut_down_ = false;
  bool drained_ = true;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_SERVER_H_
