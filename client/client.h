#ifndef SEGSERVE_CLIENT_CLIENT_H_
#define SEGSERVE_CLIENT_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/sync_stream.h"
#include "segserve/v1/segmentation.grpc.pb.h"
#include "segserve/v1/segmentation.pb.h"

namespace segserve {

// How a Client connects. Every field has a usable default; Create() refuses
// values outside the documented ranges with INVALID_ARGUMENT.
struct ClientOptions {
  // "host:port", "ipv4:1.2.3.4:5", "unix:/path" or "dns:///name:port". A
  // "dns:" target spreads calls over every address the name resolves to
  // (round_robin), unless load_balancing_policy says otherwise.
  std::string target = "127.0.0.1:50051";

  // Deadline of each call (for SegmentStream: of the whole stream), in
  // milliseconds from the call's start; 0 means no deadline.
  int64_t default_deadline_ms = 30000;

  // Sent as "authorization: Bearer <token>" on every call, for a server
  // started with --auth_tokens_file; empty: none. Send tokens over TLS only:
  // on a plaintext channel anyone on the path can read them.
  std::string bearer_token;

  // Transparent retries of calls that fail with UNAVAILABLE (server
  // restarting, draining, connection refused) or that a server cancelled
  // (CANCELLED: gRPC's own server shutdown ends calls that race it so;
  // segserve's drain does not, other servers may),
  // through gRPC's retry policy; calls this client cancels are never retried.
  // Total attempts including the first: 1 (no retry) to 5. Each retry waits a
  // random time up to the backoff, which starts at retry_initial_backoff_ms and
  // grows by retry_backoff_multiplier up to retry_max_backoff_ms. Calls are
  // not retried once the server has started answering (streams: after the
  // first response).
  int retry_max_attempts = 3;
  int64_t retry_initial_backoff_ms = 100;
  int64_t retry_max_backoff_ms = 2000;
  double retry_backoff_multiplier = 2.0;

  // Largest message sent or received, in bytes (images and masks travel in
  // one message each).
  int max_message_bytes = 64 << 20;

  // "" picks round_robin for "dns:" targets and gRPC's default (pick_first)
  // otherwise; or name one explicitly: "pick_first", "round_robin".
  std::string load_balancing_policy;

  // Shortest time between two DNS lookups of a "dns:" target, in ms. gRPC
  // looks the name up again when a connection closes (a server's
  // MAX_CONNECTION_AGE GOAWAY, a replica going away); its own default of 30 s
  // would leave replicas added by a scale-up without traffic that long.
  int64_t dns_min_reresolution_ms = 2000;

  // The channel's credentials, e.g. TlsChannelCredentials(...) (see
  // client/tls.h) or grpc::SslCredentials(...); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // With TLS: the name the server's certificate must carry, when it is not
  // the target's host (e.g. connecting by IP to a certificate for a DNS
  // name). Empty: the target's host.
  std::string tls_server_name;

  // true: this client opens its own connection(s) instead of sharing them
  // with other clients of the same target in the process (a load generator
  // uses several clients to spread calls over several connections).
  bool dedicated_connection = false;
};

// What every call of a client carries unless its CallOptions say otherwise.
struct CallDefaults {
  int64_t deadline_ms = 0;  // 0: none.
  std::string bearer_token;
};

// Per-call settings that override the client's defaults.
struct CallOptions {
  // Deadline in milliseconds from the call's start; -1: the client's
  // default_deadline_ms, 0: none.
  int64_t deadline_ms = -1;
  // true: wait for the channel to connect (up to the deadline) instead of
  // failing at once with UNAVAILABLE while the server is unreachable.
  bool wait_for_ready = false;
};

// Converts a gRPC status to an absl::Status with the same code and message
// (the numeric codes of the two are identical).
absl::Status ToAbslStatus(const grpc::Status& status);

// One bidirectional SegmentStream call: a low-level session for video-like
// use where frames are produced and consumed over time. Responses come back in
// request order. Thread-safety: one thread may call Write/WritesDone while
// another calls Read; Cancel may be called from any thread at any time. Not
// otherwise thread-safe. Must not outlive the Client that opened it.
class SegmentStreamSession {
 public:
  SegmentStreamSession(const SegmentStreamSession&) = delete;
  SegmentStreamSession& operator=(const SegmentStreamSession&) = delete;
  // Cancels the call if Finish() was not reached.
  ~SegmentStreamSession();

  // Sends one request; blocks while flow control holds it back. false: the
  // stream is broken (Finish() says why) and nothing more can be written.
  bool Write(const v1::SegmentRequest& request);
  // Half-closes the stream: no more requests.
  bool WritesDone();
  // Blocks for the next response; false at the end of the stream or on error.
  bool Read(v1::SegmentResponse* response);
  // After Read() returned false: the call's final status. Call once.
  absl::Status Finish();
  // Aborts the call; pending and later operations fail, Finish gives
  // CANCELLED.
  void Cancel();

 private:
  friend class Client;
  SegmentStreamSession(v1::Segmentation::Stub* stub,
                       const CallOptions& call_options,
                       const CallDefaults& defaults);

  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::SegmentRequest, v1::SegmentResponse>>
      stream_;
  bool finished_ = false;
};

// A connection to a segserve server. Thread-safe: one Client (and its
// channel) is meant to be shared by every thread of a process; all methods
// may be called concurrently. Create() does not wait for the connection:
// calls connect lazily, or use WaitForConnected().
class Client {
 public:
  using SegmentCallback =
      absl::AnyInvocable<void(absl::StatusOr<v1::SegmentResponse>) &&>;

  // Checks `options` (INVALID_ARGUMENT, naming the field) and creates the
  // channel with its credentials (plaintext when none). Does not connect or
  // contact the server.
  static absl::StatusOr<std::unique_ptr<Client>> Create(
      const ClientOptions& options);

  // For tests and custom transports: uses an existing channel as is (its
  // target, credentials and service config); only default_deadline_ms and
  // bearer_token are read from `options`.
  static std::unique_ptr<Client> CreateWithChannel(
      std::shared_ptr<grpc::Channel> channel, const ClientOptions& options);

  // Cancels the SegmentAsync calls still in flight and waits until each of
  // their callbacks has returned. Do not destroy a Client from inside one of
  // its callbacks. Streaming sessions must already be destroyed.
  ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Blocks until the channel is connected, or fails with UNAVAILABLE after
  // `timeout` (naming the target and the channel state).
  absl::Status WaitForConnected(absl::Duration timeout);

  // One image in, one mask out (blocking).
  absl::StatusOr<v1::SegmentResponse> Segment(
      const v1::SegmentRequest& request, const CallOptions& call_options = {});

  // Non-blocking Segment: `done` runs exactly once, on a gRPC thread, with
  // the response or the error. It must not block (it may start other calls).
  // The request is shared, not copied, until the call completes. While the
  // Client is being destroyed, `done` runs at once, inline, with CANCELLED.
  void SegmentAsync(std::shared_ptr<const v1::SegmentRequest> request,
                    SegmentCallback done, const CallOptions& call_options = {});
  void SegmentAsync(v1::SegmentRequest request, SegmentCallback done,
                    const CallOptions& call_options = {});

  // Sends all requests on one SegmentStream call (from a helper thread) while
  // reading the responses, and returns them in request order. Fails with the
  // call's status, or INTERNAL when the server answered a different number of
  // responses than requests were sent. The deadline covers the whole stream.
  absl::StatusOr<std::vector<v1::SegmentResponse>> SegmentStream(
      const std::vector<v1::SegmentRequest>& requests,
      const CallOptions& call_options = {});

  // Opens a streaming session (see SegmentStreamSession). The session must be
  // destroyed before the Client.
  std::unique_ptr<SegmentStreamSession> OpenStream(
      const CallOptions& call_options = {});

  absl::StatusOr<v1::ListModelsResponse> ListModels(
      const CallOptions& call_options = {});

  // Empty name: the server's default model; empty version: the latest ready.
  absl::StatusOr<v1::ModelInfo> GetModel(const std::string& name,
                                         const std::string& version = "",
                                         const CallOptions& call_options = {});

  // grpc.health.v1.Health/Check of `service` ("" asks about the whole
  // server; segserve also answers "liveness" and "readiness"). NOT_FOUND when
  // the server knows no such service; the call's error otherwise
  // (UNAVAILABLE when unreachable).
  enum class Health { kServing, kNotServing, kUnknown };
  absl::StatusOr<Health> CheckHealth(const std::string& service,
                                     const CallOptions& call_options = {});

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  struct AsyncCall;
  class LiveCallCount;

  Client(std::shared_ptr<grpc::Channel> channel, std::string target,
         CallDefaults defaults);

  void FinishAsync(const std::shared_ptr<AsyncCall>& call,
                   const grpc::Status& status);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::Segmentation::Stub> stub_;
  const std::string target_;  // For error messages.
  const CallDefaults defaults_;

  absl::Mutex mu_;
  // SegmentAsync calls in flight, cancelled by the destructor.
  absl::flat_hash_map<AsyncCall*, std::shared_ptr<AsyncCall>> in_flight_
      ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // AsyncCall objects not yet destroyed. gRPC may still use a call's
  // context after its callback returns, so the destructor waits for this to
  // reach 0, not only for in_flight_ to empty.
  int live_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// The JSON service config that Create() gives the channel for `options`:
// load balancing policy and the retry policy. Exposed for tests and tools.
std::string MakeServiceConfigJson(const ClientOptions& options);

// Sets the deadline, wait_for_ready and authorization of `context` for one
// call.
void ApplyCallOptions(const CallOptions& call_options,
                      const CallDefaults& defaults,
                      grpc::ClientContext* context);

}  // namespace segserve

#endif  // SEGSERVE_CLIENT_CLIENT_H_
