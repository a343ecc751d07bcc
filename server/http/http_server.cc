#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace segserve {

// One request from its arrival until its answer is written. Loop thread
// only, but for the cancel flag (read by the pipeline) and `replied`,
// which the reply's thread sets.
struct HttpReply::Exchange {
  HttpServer* server = nullptr;
  evhttp_request* request = nullptr;  // Until the answer is handed over.
  evhttp_connection* connection = nullptr;
  CancelFlag cancelled = std::make_shared<std::atomic<bool>>(false);
  std::atomic<bool> replied{false};
  std::shared_ptr<void> until_written;  // Set before the reply is sent.
};

namespace {

// Percent-decodes `text`; `plus_is_space` for a query's parts.
std::string Decode(const char* text, bool plus_is_space = false) {
  if (text == nullptr) return "";
  size_t size = 0;
  char* decoded = evhttp_uridecode(text, plus_is_space ? 1 : 0, &size);
  if (decoded == nullptr) return "";
  std::string out(decoded, size);
  std::free(decoded);
  return out;
}

// Splits "a=1&b=2" into decoded pairs.
std::vector<std::pair<std::string, std::string>> ParseQuery(const char* query) {
  std::vector<std::pair<std::string, std::string>> out;
  if (query == nullptr) return out;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = part.find('=');
    const std::string name(part.substr(0, eq));
    const std::string value(
        eq == absl::string_view::npos ? "" : part.substr(eq + 1));
    out.emplace_back(Decode(name.c_str(), true), Decode(value.c_str(), true));
  }
  return out;
}

const char* MethodName(evhttp_cmd_type type) {
  switch (type) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    default:
      return "OTHER";
  }
}

const char* ReasonPhrase(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 499:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

bufferevent* MakeTlsConnection(event_base* base, void* server_tls) {
  auto* ctx = *static_cast<SSL_CTX**>(server_tls);
  return bufferevent_openssl_socket_new(
      base, -1, SSL_new(ctx), BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

absl::StatusOr<SSL_CTX*> NewTlsContext(const HttpServer::Options& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("OpenSSL: SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  auto fail = [ctx](const std::string& what) {
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return absl::InvalidArgumentError(what);
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, options.tls_cert_file.c_str()) !=
      1) {
    return fail(absl::StrCat("cannot read the HTTP port's certificate chain '",
                             options.tls_cert_file, "' (PEM)"));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, options.tls_key_file.c_str(),
                                  SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return fail(absl::StrCat("cannot read the private key '",
                             options.tls_key_file, "' of '",
                             options.tls_cert_file, "', or it does not match"));
  }
  if (!options.tls_client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.tls_client_ca_file.c_str(),
                                      nullptr) != 1) {
      return fail(absl::StrCat("cannot read the client CAs '",
                               options.tls_client_ca_file, "' (PEM)"));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
  }
  return ctx;
}

}  // namespace

std::optional<absl::string_view> HttpRequest::Header(
    absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return absl::string_view(value);
  }
  return std::nullopt;
}

std::optional<absl::string_view> HttpRequest::Query(
    absl::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return absl::string_view(value);
  }
  return std::nullopt;
}

HttpReply::~HttpReply() {
  if (exchange_ != nullptr && !exchange_->replied.load()) {
    HttpResponse response;
    response.code = 500;
    response.body = R"({"error":"the server dropped the request unanswered"})";
    Send(std::move(response));
  }
}

void HttpReply::HoldUntilWritten(std::shared_ptr<void> until_written) {
  if (exchange_ != nullptr) exchange_->until_written = std::move(until_written);
}

void HttpReply::Send(HttpResponse response) {
  if (exchange_ == nullptr || exchange_->replied.exchange(true)) return;
  HttpServer* server = exchange_->server;
  server->Post([server, exchange = std::move(exchange_),
                response = std::move(response)]() mutable {
    server->Answer(*exchange, std::move(response));
  });
}

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(
    Options options, Handler handler) {
  static std::once_flag threads_once;
  // Answers come from pool threads: the loop must take events from them.
  std::call_once(threads_once, [] { evthread_use_pthreads(); });
  std::unique_ptr<HttpServer> server(
      new HttpServer(std::move(options), std::move(handler)));
  const Options& opts = server->options_;
  server->base_ = event_base_new();
  server->http_ = server->base_ ? evhttp_new(server->base_) : nullptr;
  if (server->http_ == nullptr) {
    return absl::InternalError("cannot start libevent's HTTP server");
  }
  evhttp_set_max_headers_size(server->http_, opts.max_header_bytes);
  evhttp_set_max_body_size(server->http_, opts.max_body_bytes);
  const timeval timeout = {
      static_cast<time_t>(absl::ToInt64Seconds(opts.io_timeout)),
      static_cast<suseconds_t>(absl::ToInt64Microseconds(opts.io_timeout) %
                               1000000)};
  evhttp_set_timeout_tv(server->http_, &timeout);
  evhttp_set_allowed_methods(
      server->http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
  evhttp_set_gencb(server->http_, &HttpServer::OnRequest, server.get());
  if (!opts.tls_cert_file.empty() || !opts.tls_key_file.empty()) {
    SEGSERVE_RETURN_IF_ERROR(server->LoadTls());
    evhttp_set_bevcb(server->http_, &MakeTlsConnection, &server->tls_);
    // New connections pick up rotated files; open ones keep theirs.
    server->tls_refresh_ = event_new(
        server->base_, -1, EV_PERSIST,
        [](evutil_socket_t, short, void* arg) {
          auto* self = static_cast<HttpServer*>(arg);
          if (absl::Status loaded = self->LoadTls(); !loaded.ok()) {
            SEGSERVE_LOG(Warning) << "HTTP TLS files not reloaded (the old "
                                     "ones serve on): "
                                  << loaded.message();
          }
        },
        server.get());
    const timeval every = {static_cast<time_t>(std::max<int64_t>(
                               1, absl::ToInt64Seconds(opts.tls_refresh))),
                           0};
    event_add(server->tls_refresh_, &every);
  }
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(
      server->http_, opts.host.c_str(), static_cast<uint16_t>(opts.port));
  if (bound == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", opts.host, ":", opts.port,
        "; is the port in use, or the address not this machine's?"));
  }
  // Answers go out at once, not held for Nagle's algorithm (a delayed ACK
  // would hold a body behind its headers for tens of milliseconds).
  // Accepted connections inherit the option.
  const int one = 1;
  setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one,
             sizeof(one));
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  getsockname(evhttp_bound_socket_get_fd(bound),
              reinterpret_cast<sockaddr*>(&address), &length);
  server->port_ =
      address.ss_family == AF_INET6
          ? ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port)
          : ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  server->loop_ = std::thread([base = server->base_] {
    // Runs until the destructor breaks it, even with no connection.
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
  });
  return server;
}

HttpServer::~HttpServer() {
  // Broken from inside the loop: a break asked before the loop thread has
  // entered event_base_loop would be cleared by it, and the loop run on.
  if (base_ != nullptr && loop_.joinable()) {
    Post([base = base_] { event_base_loopbreak(base); });
  }
  if (loop_.joinable()) loop_.join();
  if (tls_refresh_ != nullptr) event_free(tls_refresh_);
  if (http_ != nullptr) evhttp_free(http_);  // Closes every connection.
  open_.clear();
  if (base_ != nullptr) event_base_free(base_);
  if (tls_ != nullptr) SSL_CTX_free(tls_);
}

void HttpServer::StartDraining() { draining_.store(true); }

absl::Status HttpServer::LoadTls() {
  SEGSERVE_ASSIGN_OR_RETURN(auto* ctx, NewTlsContext(options_));
  // Open connections hold their own reference to the old context.
  if (tls_ != nullptr) SSL_CTX_free(tls_);
  tls_ = ctx;
  return absl::OkStatus();
}

void HttpServer::Post(absl::AnyInvocable<void()> task) {
  auto* heap = new absl::AnyInvocable<void()>(std::move(task));
  const timeval now = {0, 0};
  if (event_base_once(
          base_, -1, EV_TIMEOUT,
          [](evutil_socket_t, short, void* arg) {
            auto* run = static_cast<absl::AnyInvocable<void()>*>(arg);
            (*run)();
            delete run;
          },
          heap, &now) != 0) {
    delete heap;  // The loop has stopped: the answer has nowhere to go.
  }
}

void HttpServer::OnRequest(evhttp_request* request, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  auto exchange = std::make_shared<HttpReply::Exchange>();
  exchange->server = self;
  exchange->request = request;
  exchange->connection = evhttp_request_get_connection(request);

  HttpRequest incoming;
  incoming.method = MethodName(evhttp_request_get_command(request));
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
  incoming.path = path ? path : "";
  for (absl::string_view segment :
       absl::StrSplit(incoming.path, '/', absl::SkipEmpty())) {
    incoming.segments.push_back(Decode(std::string(segment).c_str()));
  }
  incoming.query = ParseQuery(uri ? evhttp_uri_get_query(uri) : nullptr);
  const evkeyvalq* headers = evhttp_request_get_input_headers(request);
  for (const evkeyval* header = headers->tqh_first; header != nullptr;
       header = header->next.tqe_next) {
    incoming.headers.emplace_back(header->key, header->value);
  }
  evbuffer* body = evhttp_request_get_input_buffer(request);
  incoming.body.resize(evbuffer_get_length(body));
  evbuffer_remove(body, incoming.body.data(), incoming.body.size());
  incoming.cancelled = exchange->cancelled;

  if (exchange->connection != nullptr) {
    self->open_[exchange->connection] = exchange;
    evhttp_connection_set_closecb(exchange->connection,
                                  &HttpServer::OnConnectionClosed, self);
  }
  self->handler_(std::move(incoming), HttpReply(std::move(exchange)));
}

void HttpServer::OnConnectionClosed(evhttp_connection* connection, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  auto it = self->open_.find(connection);
  if (it == self->open_.end()) return;
  // The client left: its request, if still running, need not run on. An
  // answer not yet sent still goes to evhttp, which frees the request.
  it->second->cancelled->store(true);
  it->second->connection = nullptr;
  it->second->until_written.reset();
  self->open_.erase(it);
}

void HttpServer::OnWritten(evhttp_request* request, void* arg) {
  auto* exchange = static_cast<HttpReply::Exchange*>(arg);
  exchange->until_written.reset();
  HttpServer* self = exchange->server;
  if (exchange->connection == nullptr) return;
  auto it = self->open_.find(exchange->connection);
  // Last: the entry may hold the last reference to the exchange.
  if (it != self->open_.end() && it->second.get() == exchange) {
    self->open_.erase(it);
  }
}

void HttpServer::Answer(HttpReply::Exchange& exchange, HttpResponse response) {
  evhttp_request* request = exchange.request;
  exchange.request = nullptr;
  if (request == nullptr) return;
  if (exchange.connection != nullptr) {
    // Written, the exchange ends (OnWritten); the connection may carry more
    // requests. Until then its entry keeps the exchange alive.
    evhttp_request_set_on_complete_cb(request, &HttpServer::OnWritten,
                                      &exchange);
  } else {
    exchange.until_written.reset();  // The client has gone: nothing to write.
  }
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  evhttp_add_header(headers, "Content-Type", response.content_type.c_str());
  for (const auto& [name, value] : response.headers) {
    evhttp_add_header(headers, name.c_str(), value.c_str());
  }
  if (draining_.load()) evhttp_add_header(headers, "Connection", "close");
  evbuffer* body = evbuffer_new();
  auto* text = new std::string(std::move(response.body));
  // The body is handed over without a copy and freed once written.
  evbuffer_add_reference(
      body, text->data(), text->size(),
      [](const void*, size_t, void* owner) {
        delete static_cast<std::string*>(owner);
      },
      text);
  evhttp_send_reply(request, response.code, ReasonPhrase(response.code), body);
  evbuffer_free(body);
}

}  // namespace segserve
