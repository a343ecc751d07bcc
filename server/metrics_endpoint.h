#ifndef SEGSERVE_SERVER_METRICS_ENDPOINT_H_
#define SEGSERVE_SERVER_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"
#include "server/http/http_server.h"

namespace segserve {

// GET /metrics in the Prometheus text format (prometheus-cpp's
// TextSerializer over the registry), on an HttpServer of its own, so that
// scrapes never queue behind inference traffic and the port can stay off
// the network the API faces.
//
// Why not prometheus-cpp's Exposer: its civetweb server refuses to start in a
// process that has also loaded Debian's LibTorch (whose dependencies bring
// OpenSSL 3 in, which civetweb's SSL probing then fails on).
class MetricsEndpoint {
 public:
  // Port 0 picks a free one. `registry` must outlive the endpoint.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Create(
      const std::string& host, int port, prometheus::Registry* registry);

  int port() const { return http_->port(); }

 private:
  explicit MetricsEndpoint(std::unique_ptr<HttpServer> http)
      : http_(std::move(http)) {}
  std::unique_ptr<HttpServer> http_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_METRICS_ENDPOINT_H_
