#include "server/api/rest_service.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/client_text.h"
#include "common/status_macros.h"
#include "inference/open_inference.pb.h"
#include "server/api/infer_request.h"
#include "server/api/json_util.h"
#include "server/api/oip_extensions.h"
#include "server/api/oip_model_config.h"
#include "server/api/playground.h"
#include "server/api/rest_infer.h"
#include "server/api/rest_segment.h"
#include "server/api/status_mapping.h"

#ifndef SEGSERVE_VERSION
#define SEGSERVE_VERSION "unknown"
#endif

namespace segserve {

namespace {

constexpr char kDeadlineHeader[] = "Request-Timeout-Ms";
constexpr char kPaths[] =
    "/v2/health/live, /v2/health/ready, /v2, /v2/models/{model}[/versions/"
    "{version}][/ready|/config|/stats|/infer|/segment], /v2/models/stats, "
    "/v2/repository/index, /v2/repository/models/{model}/load|unload";

HttpResponse ErrorResponse(const absl::Status& status) {
  HttpResponse response;
  response.code = ToHttpCode(status.code());
  response.body = ErrorJson(BoundStatusMessage(status.message()));
  return response;
}

HttpResponse JsonResponse(std::string body) {
  HttpResponse response;
  response.body = std::move(body);
  return response;
}

// An empty answer whose code is the answer (health and readiness).
HttpResponse Empty(int code) {
  HttpResponse response;
  response.code = code;
  response.content_type = "text/plain";
  return response;
}

// The call as the service layer sees it: its token, its deadline (the
// Request-Timeout-Ms header) and the connection's cancellation.
absl::StatusOr<CallContext> ToCallContext(const HttpRequest& request) {
  CallContext call;
  call.authorization =
      std::string(request.Header("Authorization").value_or(""));
  call.cancelled = request.cancelled;
  if (const auto timeout = request.Header(kDeadlineHeader)) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(*timeout, &ms) || ms < 1 || ms > 86400000) {
      return absl::InvalidArgumentError(
          absl::StrCat(kDeadlineHeader, " is ", QuoteClientText(*timeout),
                       "; send the milliseconds the request may take, "
                       "1..86400000"));
    }
    call.deadline = absl::Now() + absl::Milliseconds(ms);
  }
  return call;
}

// Splits the path into a route: nullopt when it names nothing served.
std::optional<std::pair<std::string, std::vector<std::string>>> Split(
    const std::vector<std::string>& segments) {
  if (segments.empty() || segments[0] != "v2") return std::nullopt;
  return std::make_pair(
      std::string(segments.size() > 1 ? segments[1] : ""),
      std::vector<std::string>(
          segments.begin() + std::min<size_t>(2, segments.size()),
          segments.end()));
}

// The model part of /v2/models/...: {m}, {m}/{action},
// {m}/versions/{v}, {m}/versions/{v}/{action}.
std::optional<RestService::Route> ModelRoute(
    const std::vector<std::string>& rest) {
  RestService::Route route;
  if (rest.empty() || rest.size() > 4) return std::nullopt;
  route.model = rest[0];
  size_t next = 1;
  if (rest.size() >= 3 && rest[1] == "versions") {
    route.version = rest[2];
    next = 3;
  }
  if (next < rest.size()) route.action = rest[next++];
  if (next != rest.size()) return std::nullopt;
  return route;
}

bool IsPost(const std::string& action) {
  return action == "infer" || action == "segment" || action == "load" ||
         action == "unload" || action == "index";
}

std::string ServerMetadataJson() {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("name");
  writer.String("segserve");
  writer.Key("version");
  writer.String(SEGSERVE_VERSION);
  writer.Key("extensions");
  writer.StartArray();
  for (const char* extension :
       {"model_configuration", "model_repository", "statistics",
        "binary_tensor_data", "segment"}) {
    writer.String(extension);
  }
  writer.EndArray();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

// The body of a repository call: empty, or a JSON object.
absl::Status ParseOptionalObject(const std::string& body,
                                 rapidjson::Document* document) {
  if (body.empty()) {
    document->SetObject();
    return absl::OkStatus();
  }
  SEGSERVE_RETURN_IF_ERROR(ParseJson(body, document));
  if (!document->IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body is ", JsonTypeName(*document),
                     "; send an object or nothing"));
  }
  return absl::OkStatus();
}

// The load or unload request's parameters, as the gRPC message's.
absl::Status ReadControlParameters(
    const rapidjson::Document& body,
    google::protobuf::Map<std::string, inference::ModelRepositoryParameter>*
        out) {
  for (const auto& member : body.GetObject()) {
    const absl::string_view key(member.name.GetString(),
                                member.name.GetStringLength());
    if (key != "parameters") {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown key ", QuoteClientText(key), "; allowed: parameters"));
    }
    if (!member.value.IsObject()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameters is ", JsonTypeName(member.value), "; send an object"));
    }
    for (const auto& parameter : member.value.GetObject()) {
      inference::ModelRepositoryParameter& value = (*out)[std::string(
          parameter.name.GetString(), parameter.name.GetStringLength())];
      if (parameter.value.IsString()) {
        value.set_string_param(std::string(parameter.value.GetString(),
                                           parameter.value.GetStringLength()));
      } else if (parameter.value.IsBool()) {
        value.set_bool_param(parameter.value.GetBool());
      } else if (parameter.value.IsInt64()) {
        value.set_int64_param(parameter.value.GetInt64());
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "parameter ",
            QuoteClientText(absl::string_view(
                parameter.name.GetString(), parameter.name.GetStringLength())),
            " is ", JsonTypeName(parameter.value),
            "; send a string, a boolean or an integer"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

void RestService::Handle(HttpRequest request, HttpReply reply) {
  // Every call counts as open until its answer is written, so that the
  // drain waits for the bytes of the last one.
  reply.HoldUntilWritten(std::make_shared<OpenCalls::Hold>(api_->calls()));
  if (playground_) {
    if (std::optional<HttpResponse> page = PlaygroundResponse(request)) {
      reply.Send(*std::move(page));
      return;
    }
  }
  auto split = Split(request.segments);
  if (!split) {
    reply.Send(ErrorResponse(absl::NotFoundError(absl::StrCat(
        "no such path ", QuoteClientText(request.path), "; paths: ", kPaths))));
    return;
  }
  const auto& [area, rest] = *split;
  const bool get = request.method == "GET" || request.method == "HEAD";
  Route route;
  if (area == "health" && rest.size() == 1 &&
      (rest[0] == "live" || rest[0] == "ready")) {
    route.action = rest[0];
  } else if (area.empty() && rest.empty()) {
    route.action = "server";
  } else if (area == "models" && rest.size() == 1 && rest[0] == "stats") {
    route.action = "stats";
  } else if (area == "models") {
    auto model = ModelRoute(rest);
    if (!model || !(model->action.empty() || model->action == "ready" ||
                    model->action == "config" || model->action == "stats" ||
                    model->action == "infer" || model->action == "segment")) {
      reply.Send(ErrorResponse(absl::NotFoundError(
          absl::StrCat("no such path ", QuoteClientText(request.path),
                       "; paths: ", kPaths))));
      return;
    }
    route = *std::move(model);
  } else if (area == "repository" && rest.size() == 1 && rest[0] == "index") {
    route.action = "index";
  } else if (area == "repository" && rest.size() == 3 && rest[0] == "models" &&
             (rest[2] == "load" || rest[2] == "unload")) {
    route.model = rest[1];
    route.action = rest[2];
  } else {
    reply.Send(ErrorResponse(absl::NotFoundError(absl::StrCat(
        "no such path ", QuoteClientText(request.path), "; paths: ", kPaths))));
    return;
  }
  if (IsPost(route.action) != (request.method == "POST") ||
      (!IsPost(route.action) && !get)) {
    HttpResponse response = ErrorResponse(absl::InvalidArgumentError(
        absl::StrCat(request.method, " is not allowed on ",
                     QuoteClientText(request.path), "; send ",
                     IsPost(route.action) ? "POST" : "GET")));
    response.code = 405;
    response.headers.emplace_back("Allow",
                                  IsPost(route.action) ? "POST" : "GET, HEAD");
    reply.Send(std::move(response));
    return;
  }

  // Probes need no token.
  if (route.action == "live") {
    reply.Send(Empty(200));
    return;
  }
  if (route.action == "ready" && route.model.empty()) {
    reply.Send(Empty(api_->Ready() ? 200 : 503));
    return;
  }
  if (route.action == "infer") {
    Infer(std::move(request), route, std::move(reply));
    return;
  }
  if (route.action == "segment") {
    Segment(std::move(request), route, std::move(reply));
    return;
  }
  if (route.action == "load" || route.action == "unload") {
    Control(std::move(request), route, std::move(reply));
    return;
  }

  absl::StatusOr<CallContext> call = ToCallContext(request);
  if (!call.ok()) {
    reply.Send(ErrorResponse(call.status()));
    return;
  }
  if (route.action == "server") {
    absl::Status allowed = api_->Authorize(*call, Right::kMetadata);
    reply.Send(allowed.ok() ? JsonResponse(ServerMetadataJson())
                            : ErrorResponse(allowed));
  } else if (route.action == "ready") {
    absl::StatusOr<bool> ready =
        api_->ModelReady(*call, route.model, route.version);
    reply.Send(ready.ok() ? Empty(*ready ? 200 : 503)
                          : ErrorResponse(ready.status()));
  } else if (route.action.empty() || route.action == "config") {
    absl::StatusOr<ModelStatus> status =
        api_->DescribeModel(*call, route.model, route.version);
    if (!status.ok()) {
      reply.Send(ErrorResponse(status.status()));
    } else if (route.action.empty()) {
      inference::ModelMetadataResponse metadata;
      ToOipModelMetadata(*status, &metadata);
      reply.Send(JsonResponse(ProtoToJson(metadata)));
    } else if (!status->has_config) {
      reply.Send(ErrorResponse(absl::UnavailableError(
          absl::StrCat("model '", status->name,
                       "' has no valid config: ", status->reason))));
    } else {
      reply.Send(JsonResponse(ProtoToJson(ToOipModelConfig(status->config))));
    }
  } else if (route.action == "stats") {
    absl::StatusOr<std::vector<VersionStatistics>> statistics =
        api_->Statistics(*call, route.model, route.version);
    if (!statistics.ok()) {
      reply.Send(ErrorResponse(statistics.status()));
      return;
    }
    inference::ModelStatisticsResponse response;
    for (const VersionStatistics& each : *statistics) {
      ToOipStatistics(each.model, each.version, each.snapshot,
                      response.add_model_stats());
    }
    reply.Send(JsonResponse(ProtoToJson(response)));
  } else if (route.action == "index") {
    rapidjson::Document body;
    absl::Status status = ParseOptionalObject(request.body, &body);
    bool ready_only = false;
    if (status.ok()) {
      for (const auto& member : body.GetObject()) {
        const absl::string_view key(member.name.GetString(),
                                    member.name.GetStringLength());
        if (key == "ready" && member.value.IsBool()) {
          ready_only = member.value.GetBool();
        } else {
          status = absl::InvalidArgumentError(
              "the index request takes one key, ready (true or false)");
        }
      }
    }
    absl::StatusOr<std::vector<ModelStatus>> models =
        status.ok() ? api_->ListModels(*call)
                    : absl::StatusOr<std::vector<ModelStatus>>(status);
    if (!models.ok()) {
      reply.Send(ErrorResponse(models.status()));
      return;
    }
    inference::RepositoryIndexResponse index;
    ToRepositoryIndex(*models, ready_only, &index);
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    writer.StartArray();
    for (const auto& model : index.models()) WriteProtoJson(model, writer);
    writer.EndArray();
    reply.Send(JsonResponse(std::string(buffer.GetString(), buffer.GetSize())));
  }
}

absl::StatusOr<InferenceGrant> RestService::InferenceCall(
    const HttpRequest& request) const {
  SEGSERVE_ASSIGN_OR_RETURN(CallContext call, ToCallContext(request));
  // Checked before the request is read: a caller without the right learns
  // nothing of what is wrong with it.
  return api_->AuthorizeInference(std::move(call));
}

void RestService::Infer(HttpRequest request, const Route& route,
                        HttpReply reply) {
  absl::StatusOr<InferenceGrant> call = InferenceCall(request);
  if (!call.ok()) {
    reply.Send(ErrorResponse(call.status()));
    return;
  }
  struct State {
    HttpRequest request;
    inference::ModelInferRequest infer;
    InferCall call;
    RestOutputs outputs;
  };
  auto state = std::make_shared<State>();
  state->request = std::move(request);
  std::optional<size_t> json_length;
  if (const auto header =
          state->request.Header(kInferenceHeaderContentLength)) {
    size_t length = 0;
    if (!absl::SimpleAtoi(*header, &length)) {
      reply.Send(ErrorResponse(absl::InvalidArgumentError(absl::StrCat(
          kInferenceHeaderContentLength, " is ", QuoteClientText(*header),
          "; send the JSON part's length in bytes"))));
      return;
    }
    json_length = length;
  }
  absl::Status parsed = ParseRestInferRequest(state->request.body, json_length,
                                              &state->infer, &state->outputs);
  if (parsed.ok()) {
    state->infer.set_model_name(route.model);
    state->infer.set_model_version(route.version);
    parsed = ToInferCall(state->infer, &state->call);
    if (!parsed.ok()) {
      // The REST request had no raw_input_contents: say what it had.
      parsed = absl::Status(
          parsed.code(),
          absl::StrReplaceAll(parsed.message(),
                              {{"raw_input_contents of IMAGE",
                                json_length ? "the binary data of IMAGE"
                                            : "the data of IMAGE"}}));
    }
  }
  if (!parsed.ok()) {
    reply.Send(ErrorResponse(parsed));
    return;
  }
  SegmentJob job = std::move(state->call.job);
  api_->Infer(*call, std::move(job),
              [state, reply = std::move(reply)](
                  absl::StatusOr<std::vector<SegmentResult>> results) mutable {
                if (!results.ok()) {
                  reply.Send(ErrorResponse(results.status()));
                  return;
                }
                inference::ModelInferResponse answer;
                absl::Status filled = FillInferResponse(
                    state->infer, state->call, *std::move(results), &answer);
                absl::StatusOr<RestInferBody> body =
                    filled.ok() ? WriteRestInferResponse(answer, state->outputs)
                                : absl::StatusOr<RestInferBody>(filled);
                if (!body.ok()) {
                  reply.Send(ErrorResponse(body.status()));
                  return;
                }
                HttpResponse response;
                response.body = std::move(body->body);
                if (body->json_length.has_value()) {
                  response.content_type = "application/octet-stream";
                  response.headers.emplace_back(
                      kInferenceHeaderContentLength,
                      absl::StrCat(*body->json_length));
                }
                reply.Send(std::move(response));
              });
}

void RestService::Segment(HttpRequest request, const Route& route,
                          HttpReply reply) {
  absl::StatusOr<InferenceGrant> call = InferenceCall(request);
  if (!call.ok()) {
    reply.Send(ErrorResponse(call.status()));
    return;
  }
  auto state = std::make_shared<HttpRequest>(std::move(request));
  absl::StatusOr<RestSegmentCall> segment =
      ToRestSegmentCall(*state, route.model, route.version);
  if (!segment.ok()) {
    reply.Send(ErrorResponse(segment.status()));
    return;
  }
  api_->Infer(*call, std::move(segment->job),
              [state, png = segment->png_body, reply = std::move(reply)](
                  absl::StatusOr<std::vector<SegmentResult>> results) mutable {
                reply.Send(results.ok()
                               ? ToRestSegmentResponse(results->front(), png)
                               : ErrorResponse(results.status()));
              });
}

void RestService::Control(HttpRequest request, const Route& route,
                          HttpReply reply) {
  absl::StatusOr<CallContext> call = ToCallContext(request);
  rapidjson::Document body;
  absl::Status status = call.status();
  if (status.ok()) status = ParseOptionalObject(request.body, &body);
  inference::RepositoryModelLoadRequest load;
  load.set_model_name(route.model);
  if (status.ok()) {
    status = ReadControlParameters(body, load.mutable_parameters());
  }
  std::optional<std::string> config;
  if (status.ok() && route.action == "load") {
    absl::StatusOr<std::optional<std::string>> override = ConfigOverride(load);
    status = override.status();
    if (status.ok()) config = *std::move(override);
  } else if (status.ok() && !load.parameters().empty()) {
    status = absl::InvalidArgumentError(
        "unload takes no parameters (segserve has no dependent models to "
        "unload)");
  }
  if (!status.ok()) {
    reply.Send(ErrorResponse(status));
    return;
  }
  auto done = [reply = std::move(reply)](absl::Status result) mutable {
    reply.Send(result.ok() ? JsonResponse("{}") : ErrorResponse(result));
  };
  if (route.action == "load") {
    api_->LoadModel(*call, route.model, std::move(config), std::move(done));
  } else {
    api_->UnloadModel(*call, route.model, std::move(done));
  }
}

}  // namespace segserve
