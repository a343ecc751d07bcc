#include "client/client.h"

#include <chrono>
#include <cstdint>
#include <thread>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/validate_service_config.h"

namespace segserve {
namespace {

constexpr char kServiceName[] = "segserve.v1.Segmentation";

std::string Seconds(int64_t ms) {
  return absl::StrFormat("%d.%03ds", ms / 1000, ms % 1000);
}

const char* StateName(grpc_connectivity_state state) {
  switch (state) {
    case GRPC_CHANNEL_IDLE:
      return "IDLE";
    case GRPC_CHANNEL_CONNECTING:
      return "CONNECTING";
    case GRPC_CHANNEL_READY:
      return "READY";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
      return "TRANSIENT_FAILURE";
    case GRPC_CHANNEL_SHUTDOWN:
      return "SHUTDOWN";
  }
  return "UNKNOWN";
}

absl::Status Validate(const ClientOptions& o) {
  if (o.target.empty()) {
    return absl::InvalidArgumentError(
        "ClientOptions.target is empty; give host:port or dns:///name:port");
  }
  if (o.default_deadline_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ClientOptions.default_deadline_ms is ",
                     o.default_deadline_ms, "; use 0 (none) or more"));
  }
  if (o.retry_max_attempts < 1 || o.retry_max_attempts > 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ClientOptions.retry_max_attempts is ", o.retry_max_attempts,
        "; allowed: 1 (no retries) to 5 (gRPC's limit)"));
  }
  if (o.retry_initial_backoff_ms <= 0 ||
      o.retry_max_backoff_ms < o.retry_initial_backoff_ms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ClientOptions retry backoff is ", o.retry_initial_backoff_ms,
        " ms initial, ", o.retry_max_backoff_ms,
        " ms max; the initial must be > 0 and the max at least the initial"));
  }
  if (!(o.retry_backoff_multiplier > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ClientOptions.retry_backoff_multiplier is ",
                     o.retry_backoff_multiplier, "; it must be > 0"));
  }
  if (o.dns_min_reresolution_ms <= 0 || o.dns_min_reresolution_ms > INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ClientOptions.dns_min_reresolution_ms is ", o.dns_min_reresolution_ms,
        "; it must be > 0 and fit in 32 bits"));
  }
  if (o.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ClientOptions.max_message_bytes is ", o.max_message_bytes,
                     "; it must be > 0"));
  }
  if (!o.load_balancing_policy.empty() &&
      o.load_balancing_policy != "pick_first" &&
      o.load_balancing_policy != "round_robin") {
    return absl::InvalidArgumentError(absl::StrCat(
        "ClientOptions.load_balancing_policy is '", o.load_balancing_policy,
        "'; allowed: '' (automatic), 'pick_first', 'round_robin'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // grpc::StatusCode and absl::StatusCode share their numbering.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

std::string MakeServiceConfigJson(const ClientOptions& options) {
  std::string policy = options.load_balancing_policy;
  if (policy.empty() && absl::StartsWith(options.target, "dns:")) {
    policy = "round_robin";
  }
  std::vector<std::string> parts;
  if (!policy.empty()) {
    parts.push_back(
        absl::StrCat("\"loadBalancingConfig\":[{\"", policy, "\":{}}]"));
  }
  if (options.retry_max_attempts > 1) {
    parts.push_back(absl::StrFormat(
        "\"methodConfig\":[{\"name\":[{\"service\":\"%s\"}],"
        "\"retryPolicy\":{\"maxAttempts\":%d,\"initialBackoff\":\"%s\","
        "\"maxBackoff\":\"%s\",\"backoffMultiplier\":%g,"
        "\"retryableStatusCodes\":[\"UNAVAILABLE\",\"CANCELLED\"]}}]",
        kServiceName, options.retry_max_attempts,
        Seconds(options.retry_initial_backoff_ms),
        Seconds(options.retry_max_backoff_ms),
        options.retry_backoff_multiplier));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

void ApplyCallOptions(const CallOptions& call_options,
                      const CallDefaults& defaults,
                      grpc::ClientContext* context) {
  const int64_t deadline_ms = call_options.deadline_ms < 0
                                  ? defaults.deadline_ms
                                  : call_options.deadline_ms;
  if (!defaults.bearer_token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", defaults.bearer_token));
  }
  if (deadline_ms > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(deadline_ms));
  }
  context->set_wait_for_ready(call_options.wait_for_ready);
}

// ---------------------------------------------------------------------------
// SegmentStreamSession

SegmentStreamSession::SegmentStreamSession(v1::Segmentation::Stub* stub,
                                           const CallOptions& call_options,
                                           const CallDefaults& defaults) {
  ApplyCallOptions(call_options, defaults, &context_);
  stream_ = stub->SegmentStream(&context_);
}

SegmentStreamSession::~SegmentStreamSession() {
  if (!finished_) {
    // The stream must be finished before it is destroyed: cancel so that
    // Finish() returns without waiting for the server.
    context_.TryCancel();
    stream_->Finish().IgnoreError();
  }
}

bool SegmentStreamSession::Write(const v1::SegmentRequest& request) {
  return stream_->Write(request);
}

bool SegmentStreamSession::WritesDone() { return stream_->WritesDone(); }

bool SegmentStreamSession::Read(v1::SegmentResponse* response) {
  return stream_->Read(response);
}

absl::Status SegmentStreamSession::Finish() {
  if (finished_) {
    return absl::FailedPreconditionError(
        "SegmentStreamSession::Finish was already called");
  }
  finished_ = true;
  return ToAbslStatus(stream_->Finish());
}

void SegmentStreamSession::Cancel() { context_.TryCancel(); }

// ---------------------------------------------------------------------------
// Client

// Counts an AsyncCall in Client::live_calls_ for as long as it exists.
class Client::LiveCallCount {
 public:
  explicit LiveCallCount(Client* client) : client_(client) {
    absl::MutexLock lock(&client_->mu_);
    ++client_->live_calls_;
  }
  ~LiveCallCount() {
    absl::MutexLock lock(&client_->mu_);
    --client_->live_calls_;
  }
  LiveCallCount(const LiveCallCount&) = delete;
  LiveCallCount& operator=(const LiveCallCount&) = delete;

 private:
  Client* const client_;
};

struct Client::AsyncCall {
  explicit AsyncCall(Client* client) : live(client) {}
  // First member, so destroyed last: after the context.
  LiveCallCount live;
  grpc::ClientContext context;
  std::shared_ptr<const v1::SegmentRequest> request;
  v1::SegmentResponse response;
  SegmentCallback done;
};

absl::StatusOr<std::unique_ptr<Client>> Client::Create(
    const ClientOptions& options) {
  SEGSERVE_RETURN_IF_ERROR(Validate(options));
  const std::string service_config = MakeServiceConfigJson(options);
  if (std::string error =
          grpc::experimental::ValidateServiceConfigJSON(service_config);
      !error.empty()) {
    return absl::InternalError(absl::StrCat(
        "generated service config ", service_config, " is invalid: ", error));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  args.SetServiceConfigJSON(service_config);
  // Ours is the only service config: skip DNS TXT lookups for another one.
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  // On even without a retry policy: gRPC then still retries, transparently,
  // calls that no server saw (refused streams racing a draining server's
  // GOAWAY).
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
  // gRPC retries only calls whose sent messages fit its retry buffer (256 KiB
  // by default): images are larger, so make room for a whole message.
  args.SetInt(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, options.max_message_bytes);
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS,
              static_cast<int>(options.dns_min_reresolution_ms));
  if (options.dedicated_connection) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  }
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      options.target,
      options.credentials != nullptr ? options.credentials
                                     : grpc::InsecureChannelCredentials(),
      args);
  if (channel == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot create a channel to ", options.target));
  }
  return absl::WrapUnique(
      new Client(std::move(channel), options.target,
                 {options.default_deadline_ms, options.bearer_token}));
}

std::unique_ptr<Client> Client::CreateWithChannel(
    std::shared_ptr<grpc::Channel> channel, const ClientOptions& options) {
  return absl::WrapUnique(
      new Client(std::move(channel), "the server",
                 {options.default_deadline_ms, options.bearer_token}));
}

Client::Client(std::shared_ptr<grpc::Channel> channel, std::string target,
               CallDefaults defaults)
    : channel_(std::move(channel)),
      stub_(v1::Segmentation::NewStub(channel_)),
      target_(std::move(target)),
      defaults_(std::move(defaults)) {}

Client::~Client() {
  std::vector<std::shared_ptr<AsyncCall>> calls;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    calls.reserve(in_flight_.size());
    for (const auto& [key, call] : in_flight_) calls.push_back(call);
  }
  // Outside the lock: a cancellation may complete the call on this thread.
  // The shared pointers keep each context alive while it is cancelled.
  for (const std::shared_ptr<AsyncCall>& call : calls) {
    call->context.TryCancel();
  }
  calls.clear();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* live_calls) { return *live_calls == 0; }, &live_calls_));
}

absl::Status Client::WaitForConnected(absl::Duration timeout) {
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
  grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (!channel_->WaitForStateChange(state, deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "could not connect to ", target_, " within ",
          absl::FormatDuration(timeout), " (channel state ", StateName(state),
          "); is the server running and the target right?"));
    }
    state = channel_->GetState(/*try_to_connect=*/true);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::SegmentResponse> Client::Segment(
    const v1::SegmentRequest& request, const CallOptions& call_options) {
  grpc::ClientContext context;
  ApplyCallOptions(call_options, defaults_, &context);
  v1::SegmentResponse response;
  grpc::Status status = stub_->Segment(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

void Client::SegmentAsync(v1::SegmentRequest request, SegmentCallback done,
                          const CallOptions& call_options) {
  SegmentAsync(std::make_shared<const v1::SegmentRequest>(std::move(request)),
               std::move(done), call_options);
}

void Client::SegmentAsync(std::shared_ptr<const v1::SegmentRequest> request,
                          SegmentCallback done,
                          const CallOptions& call_options) {
  // The call counts itself in live_calls_ (locking mu_), so build it first.
  auto call = std::make_shared<AsyncCall>(this);
  bool accepted = false;
  {
    absl::MutexLock lock(&mu_);
    if (!shutting_down_) {
      in_flight_.emplace(call.get(), call);
      accepted = true;
    }
  }
  if (!accepted) {
    call = nullptr;  // Outside mu_: its destructor locks it.

    std::move(done)(absl::CancelledError(
        "segserve::Client is being destroyed; the call was not sent"));
    return;
  }
  call->request = std::move(request);
  call->done = std::move(done);
  ApplyCallOptions(call_options, defaults_, &call->context);
  stub_->async()->Segment(
      &call->context, call->request.get(), &call->response,
      [this, call](grpc::Status status) { FinishAsync(call, status); });
}

void Client::FinishAsync(const std::shared_ptr<AsyncCall>& call,
                         const grpc::Status& status) {
  if (status.ok()) {
    std::move(call->done)(std::move(call->response));
  } else {
    std::move(call->done)(ToAbslStatus(status));
  }
  // Erased only after the callback returned: the destructor waits for this.
  absl::MutexLock lock(&mu_);
  in_flight_.erase(call.get());
}

absl::StatusOr<std::vector<v1::SegmentResponse>> Client::SegmentStream(
    const std::vector<v1::SegmentRequest>& requests,
    const CallOptions& call_options) {
  SegmentStreamSession session(stub_.get(), call_options, defaults_);
  // Write from a helper thread while this one reads: a server that applies
  // back-pressure could otherwise stall a client that writes everything
  // before reading anything.
  std::thread writer([&session, &requests] {
    for (const v1::SegmentRequest& request : requests) {
      if (!session.Write(request)) return;  // Broken: Finish() says why.
    }
    session.WritesDone();
  });
  std::vector<v1::SegmentResponse> responses;
  responses.reserve(requests.size());
  v1::SegmentResponse response;
  while (session.Read(&response)) {
    responses.push_back(std::move(response));
    response.Clear();
  }
  // Read() returning false means the server closed the call, so the writer's
  // blocked Write() (if any) fails and the thread ends.
  writer.join();
  SEGSERVE_RETURN_IF_ERROR(session.Finish());
  if (responses.size() != requests.size()) {
    return absl::InternalError(absl::StrCat(
        "SegmentStream: the server sent ", responses.size(), " responses for ",
        requests.size(), " requests; expected one each"));
  }
  return responses;
}

std::unique_ptr<SegmentStreamSession> Client::OpenStream(
    const CallOptions& call_options) {
  return absl::WrapUnique(
      new SegmentStreamSession(stub_.get(), call_options, defaults_));
}

absl::StatusOr<v1::ListModelsResponse> Client::ListModels(
    const CallOptions& call_options) {
  grpc::ClientContext context;
  ApplyCallOptions(call_options, defaults_, &context);
  v1::ListModelsResponse response;
  grpc::Status status =
      stub_->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

absl::StatusOr<v1::ModelInfo> Client::GetModel(
    const std::string& name, const std::string& version,
    const CallOptions& call_options) {
  grpc::ClientContext context;
  ApplyCallOptions(call_options, defaults_, &context);
  v1::GetModelRequest request;
  request.set_name(name);
  request.set_version(version);
  v1::ModelInfo response;
  grpc::Status status = stub_->GetModel(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

namespace {

// The two messages of grpc.health.v1 by hand, so that clients need no
// generated code for them: HealthCheckRequest {string service = 1;} and
// HealthCheckResponse {ServingStatus status = 1;}.
std::string EncodeHealthRequest(const std::string& service) {
  if (service.empty()) return "";
  std::string bytes = "\x0a";
  for (uint64_t size = service.size();; size >>= 7) {
    if (size < 0x80) {
      bytes.push_back(static_cast<char>(size));
      break;
    }
    bytes.push_back(static_cast<char>((size & 0x7f) | 0x80));
  }
  return bytes + service;
}

// The status field's value; 0 (UNKNOWN) when it is absent.
int DecodeHealthStatus(const std::string& bytes) {
  if (bytes.size() >= 2 && bytes[0] == 0x08) return bytes[1] & 0x7f;
  return 0;
}

}  // namespace

absl::StatusOr<Client::Health> Client::CheckHealth(
    const std::string& service, const CallOptions& call_options) {
  grpc::ClientContext context;
  ApplyCallOptions(call_options, defaults_, &context);
  const std::string request_bytes = EncodeHealthRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::GenericStub stub(channel_);
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    return absl::NotFoundError(
        absl::StrCat(target_, " has no health service named '", service,
                     "'; segserve answers \"\" (the whole server), "
                     "\"liveness\", \"readiness\" and "
                     "\"segserve.v1.Segmentation\""));
  }
  if (!status.ok()) return ToAbslStatus(status);
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return absl::InternalError("cannot read the health response");
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  switch (DecodeHealthStatus(bytes)) {
    case 1:
      return Health::kServing;
    case 2:
      return Health::kNotServing;
    default:
      return Health::kUnknown;
  }
}

}  // namespace segserve
