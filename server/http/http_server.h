#ifndef SEGSERVE_SERVER_HTTP_HTTP_SERVER_H_
#define SEGSERVE_SERVER_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/inference_request.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;
struct ssl_ctx_st;

namespace segserve {

// One HTTP request, read whole, in the project's own types.
struct HttpRequest {
  std::string method;  // "GET", "POST", "HEAD", ...
  std::string path;    // As sent, without the query.
  // The path's segments, each percent-decoded ("/v2/models/a%2Fb" is
  // {"v2", "models", "a/b"}).
  std::vector<std::string> segments;
  std::vector<std::pair<std::string, std::string>> query;  // Decoded.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Set when the client's connection closes before the answer is sent.
  CancelFlag cancelled;

  // The first header named `name` (case-insensitive); nullopt when none.
  std::optional<absl::string_view> Header(absl::string_view name) const;
  // The first query parameter named `name`; nullopt when none.
  std::optional<absl::string_view> Query(absl::string_view name) const;
};

struct HttpResponse {
  int code = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class HttpServer;

// Answers one request exactly once, from any thread: Send hands the answer
// to the server's event loop. Destroying an unanswered reply answers 500,
// so no request is left hanging. Movable, not copyable.
class HttpReply {
 public:
  HttpReply(HttpReply&&) = default;
  HttpReply& operator=(HttpReply&&) = default;
  ~HttpReply();

  void Send(HttpResponse response);

  // Keeps `until_written` alive until the answer has been written to the
  // connection (or the connection has gone): a frontend's open-call count
  // held here makes the drain wait for the bytes, not just the answer.
  void HoldUntilWritten(std::shared_ptr<void> until_written);

 private:
  friend class HttpServer;
  struct Exchange;
  explicit HttpReply(std::shared_ptr<Exchange> exchange)
      : exchange_(std::move(exchange)) {}
  std::shared_ptr<Exchange> exchange_;
};

// An HTTP/1.1 server on libevent's evhttp (TF Serving's choice): one event
// loop thread reads requests whole and hands them to the handler, which
// must not block; answers may come from any thread. evhttp brings
// keep-alive, chunked request bodies and the limits below (over-long
// headers or bodies are refused 400 or 413 before the handler sees them).
// Optional TLS (OpenSSL) from PEM files, re-read periodically so that a
// rotated certificate serves new connections without a restart.
class HttpServer {
 public:
  using Handler = absl::AnyInvocable<void(HttpRequest, HttpReply)>;

  struct Options {
    std::string host = "0.0.0.0";
    int port = 8000;  // 0: pick a free one.
    int max_header_bytes = 16 << 10;
    int64_t max_body_bytes = 64 << 20;
    // A connection that sends or reads nothing for this long is closed: it
    // bounds idle keep-alive connections and clients that trickle bytes.
    absl::Duration io_timeout = absl::Seconds(30);
    // TLS: both set, the port speaks HTTPS only. With client_ca_file,
    // clients must present a certificate those CAs signed.
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_client_ca_file;
    absl::Duration tls_refresh = absl::Seconds(60);
  };

  // Binds and starts the event loop. Fails when the address cannot be
  // bound or a TLS file cannot be read.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(Options options,
                                                            Handler handler);
  // Stops the loop and closes every connection; answers sent after this
  // are dropped.
  ~HttpServer();

  int port() const { return port_; }

  // From now on answers carry "Connection: close", so that keep-alive
  // clients reconnect, to another replica once this one is not ready.
  void StartDraining();

 private:
  friend class HttpReply;
  HttpServer(Options options, Handler handler);
  static void OnRequest(evhttp_request* request, void* server);
  static void OnConnectionClosed(evhttp_connection* connection, void* server);
  static void OnWritten(evhttp_request* request, void* exchange);
  // Runs `task` on the event loop thread.
  void Post(absl::AnyInvocable<void()> task);
  void Answer(HttpReply::Exchange& exchange, HttpResponse response);
  absl::Status LoadTls();

  const Options options_;
  Handler handler_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  int port_ = 0;
  std::atomic<bool> draining_{false};
  // The exchange under way on each connection (evhttp answers one request
  // of a connection at a time). Loop thread only.
  absl::flat_hash_map<evhttp_connection*, std::shared_ptr<HttpReply::Exchange>>
      open_;
  // TLS: the context new connections use (loop thread only).
  ssl_ctx_st* tls_ = nullptr;
  event* tls_refresh_ = nullptr;  // Re-reads the TLS files.
  std::thread loop_;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_HTTP_HTTP_SERVER_H_
