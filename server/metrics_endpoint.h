#ifndef SEGSERVE_SERVER_METRICS_ENDPOINT_H_
#define SEGSERVE_SERVER_METRICS_ENDPOINT_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace segserve {

// A minimal HTTP/1.x endpoint serving GET /metrics in the Prometheus text
// format (prometheus-cpp's TextSerializer over the registry).
//
// Why not prometheus-cpp's Exposer: its civetweb server refuses to start in a
// process that has also loaded Debian's LibTorch (whose dependencies bring
// OpenSSL 3 in, which civetweb's SSL probing then fails on), so segserve
// serves scrapes itself. One thread answers one connection at a time, which
// suits scrapers; slow clients time out after two seconds.
class MetricsEndpoint {
 public:
  // `address` is "host:port"; port 0 picks a free one. `registry` must
  // outlive the endpoint.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Create(
      const std::string& address, prometheus::Registry* registry);
  ~MetricsEndpoint();

  int port() const { return port_; }

 private:
  MetricsEndpoint(int listen_fd, int wake_fd_read, int wake_fd_write, int port,
                  prometheus::Registry* registry);
  void Serve();
  void Answer(int fd);

  const int listen_fd_;
  const int wake_read_;  // Closing wake_write_ ends Serve().
  const int wake_write_;
  const int port_;
  prometheus::Registry* const registry_;
  std::thread thread_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_METRICS_ENDPOINT_H_
