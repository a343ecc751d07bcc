#ifndef SEGSERVE_SERVER_SERVER_H_
#define SEGSERVE_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/served_model.h"

namespace grpc {
class Server;
}
namespace prometheus {
class Registry;
}  // namespace prometheus

namespace segserve {

class Metrics;
class MetricsEndpoint;
class ModelRepository;
class SegmentProcessor;
class SegmentationService;
class ThreadPool;

// The whole segserve server: model repository, worker pool, gRPC services
// (Segmentation, health, reflection) and the Prometheus endpoint.
class Server {
 public:
  struct Options {
    std::string model_repository = "model_repository";
    std::string default_model;
    std::string grpc_address = "0.0.0.0:50051";    // Port 0: pick a free one.
    std::string metrics_address = "0.0.0.0:8002";  // Empty: no endpoint.
    int64_t max_image_pixels = 64LL << 20;
    int max_message_bytes = 64 << 20;
    int preprocess_threads = 2;
    absl::Duration drain_timeout = absl::Seconds(30);
    ModelLoader loader;  // Empty: TorchModelLoader().
    int cuda_device_count = 0;
  };

  // Loads the models and starts serving. Fails when the repository cannot
  // be read or a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Create(Options options);
  ~Server();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }

  // Graceful stop: health turns NOT_SERVING at once, new calls get
  // UNAVAILABLE, accepted requests finish (up to drain_timeout), then the
  // gRPC server stops. Returns whether every accepted request finished.
  // Idempotent.
  bool Shutdown();

 private:
  explicit Server(Options options);

  Options options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<SegmentProcessor> processor_;
  std::unique_ptr<SegmentationService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
  bool drained_ = true;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_SERVER_H_
