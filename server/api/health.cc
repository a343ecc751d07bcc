#include "server/api/health.h"

#include "grpcpp/health_check_service_interface.h"

namespace segserve {

HealthFrontend::HealthFrontend(grpc::HealthCheckServiceInterface* health)
    : health_(health) {
  health_->SetServingStatus(kLivenessService, true);
  SetReady(false);
}

void HealthFrontend::SetReady(bool ready) {
  // By name: the overload without one would set liveness as well.
  health_->SetServingStatus("", ready);
  health_->SetServingStatus(kSegmentationService, ready);
  health_->SetServingStatus(kReadinessService, ready);
}

}  // namespace segserve
