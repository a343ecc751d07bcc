#include "server/metrics_endpoint.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace segserve {

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Create(
    const std::string& host, int port, prometheus::Registry* registry) {
  HttpServer::Options options;
  options.host = host;
  options.port = port;
  options.max_header_bytes = 8 << 10;
  options.max_body_bytes = 0;  // A scrape has no body.
  options.io_timeout = absl::Seconds(5);
  auto serve = [registry](HttpRequest request, HttpReply reply) {
    HttpResponse response;
    response.content_type = "text/plain";
    if (request.segments != std::vector<std::string>{"metrics"}) {
      response.code = 404;
      response.body = "not found; metrics are at /metrics\n";
    } else if (request.method != "GET" && request.method != "HEAD") {
      response.code = 405;
      response.headers.emplace_back("Allow", "GET, HEAD");
      response.body = "only GET /metrics is served\n";
    } else {
      response.content_type = "text/plain; version=0.0.4; charset=utf-8";
      response.body =
          prometheus::TextSerializer().Serialize(registry->Collect());
    }
    reply.Send(std::move(response));
  };
  absl::StatusOr<std::unique_ptr<HttpServer>> http =
      HttpServer::Create(std::move(options), std::move(serve));
  if (!http.ok()) {
    return absl::Status(
        http.status().code(),
        absl::StrCat("metrics endpoint: ", http.status().message()));
  }
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(*std::move(http)));
}

}  // namespace segserve
