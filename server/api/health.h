#ifndef SEGSERVE_SERVER_API_HEALTH_H_
#define SEGSERVE_SERVER_API_HEALTH_H_

namespace grpc {
class HealthCheckServiceInterface;
}  // namespace grpc

namespace segserve {

// The grpc.health.v1 frontend: the service names segserve answers and what
// they mean, on gRPC's own health service.
//   kLivenessService: SERVING while the process works (from the moment the
//     port is bound until the server stops).
//   kReadinessService, the overall "" and kSegmentationService: SERVING only
//     while the server takes traffic (models ready, no drain).
class HealthFrontend {
 public:
  static constexpr char kLivenessService[] = "liveness";
  static constexpr char kReadinessService[] = "readiness";
  static constexpr char kSegmentationService[] = "segserve.v1.Segmentation";

  // `health` must outlive the frontend. Starts live and not ready.
  explicit HealthFrontend(grpc::HealthCheckServiceInterface* health);

  void SetReady(bool ready);

 private:
  grpc::HealthCheckServiceInterface* const health_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_HEALTH_H_
