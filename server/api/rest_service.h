#ifndef SEGSERVE_SERVER_API_REST_SERVICE_H_
#define SEGSERVE_SERVER_API_REST_SERVICE_H_

#include <string>
#include <vector>

#include "server/http/http_server.h"
#include "server/service/serving_api.h"

namespace segserve {

// The HTTP frontend: KServe v2 REST (the Open Inference Protocol's REST
// side with Triton's extensions) and an image endpoint for curl, converted
// to and from the service layer's calls, so rights, deadlines, priorities,
// limits, metrics and status codes are the gRPC frontends'.
//   GET  /v2/health/live, /v2/health/ready           (open, for probes)
//   GET  /v2                                          server metadata
//   GET  /v2/models/{m}[/versions/{v}]                model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready|config|stats, /v2/models/stats
//   POST /v2/models/{m}[/versions/{v}]/infer          JSON or binary tensors
//   POST /v2/models/{m}[/versions/{v}]/segment        see rest_segment.h
//   POST /v2/repository/index, /v2/repository/models/{m}/load|unload
//   GET  /, /playground/...                           the playground's page
// Headers: "Authorization: Bearer <token>", "Request-Timeout-Ms: <ms>" (the
// deadline). Errors are {"error": "..."} with ToHttpCode's code.
// Thread-safe.
class RestService {
 public:
  // `api` must outlive the service. `playground`: serve the playground's
  // page (playground.h) at /.
  RestService(ServingApi* api, bool playground)
      : api_(api), playground_(playground) {}

  // HttpServer's handler: answers `request` through `reply`, never blocking.
  void Handle(HttpRequest request, HttpReply reply);

  // What a path names: a model (and version) and what to do with it.
  struct Route {
    std::string model;
    std::string version;
    std::string action;  // "" (metadata), ready, config, stats, infer, ...
  };

 private:
  // The call's grant to infer: its headers read and its token holding the
  // inference right.
  absl::StatusOr<InferenceGrant> InferenceCall(
      const HttpRequest& request) const;
  void Infer(HttpRequest request, const Route& route, HttpReply reply);
  void Segment(HttpRequest request, const Route& route, HttpReply reply);
  void Control(HttpRequest request, const Route& route, HttpReply reply);

  ServingApi* const api_;
  const bool playground_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_REST_SERVICE_H_
