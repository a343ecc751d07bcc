#include "server/metrics_endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "prometheus/text_serializer.h"
#include "server/metrics_request.h"

namespace segserve {
namespace {

constexpr int kIoTimeoutMs = 2000;
constexpr size_t kMaxRequestBytes = 8192;
// The whole request must arrive within this: the endpoint answers one
// client at a time, and a client trickling a byte per second must not hold
// it for hours.
constexpr absl::Duration kRequestDeadline = absl::Seconds(5);

bool WriteAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, kIoTimeoutMs) <= 0) return false;
    const ssize_t n =
        send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += size_t(n);
  }
  return true;
}

std::string Reply(const std::string& status, const std::string& type,
                  const std::string& body) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Create(
    const std::string& address, prometheus::Registry* registry) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", address, "' must be host:port, port 0..65535"));
  }
  const std::string host = address.substr(0, colon);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port_text = absl::StrCat(port);
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(),
                  &hints, &found) != 0 ||
      found == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve metrics host '", host, "'"));
  }
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const bool bound = fd >= 0 &&
                     bind(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                     listen(fd, 64) == 0;
  const int error = errno;
  freeaddrinfo(found);
  if (!bound) {
    if (fd >= 0) close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ",
                     std::strerror(error), "; choose another --metrics_port"));
  }
  sockaddr_storage bound_address{};
  socklen_t length = sizeof(bound_address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound_address), &length);
  const int bound_port =
      ntohs(bound_address.ss_family == AF_INET6
                ? reinterpret_cast<sockaddr_in6*>(&bound_address)->sin6_port
                : reinterpret_cast<sockaddr_in*>(&bound_address)->sin_port);
  int wake[2];
  if (pipe2(wake, O_CLOEXEC) != 0) {
    close(fd);
    return absl::InternalError("cannot create the metrics wake-up pipe");
  }
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(fd, wake[0], wake[1], bound_port, registry));
}

MetricsEndpoint::MetricsEndpoint(int listen_fd, int wake_fd_read,
                                 int wake_fd_write, int port,
                                 prometheus::Registry* registry)
    : listen_fd_(listen_fd),
      wake_read_(wake_fd_read),
      wake_write_(wake_fd_write),
      port_(port),
      registry_(registry),
      thread_([this] { Serve(); }) {}

MetricsEndpoint::~MetricsEndpoint() {
  close(wake_write_);
  thread_.join();
  close(wake_read_);
  close(listen_fd_);
}

void MetricsEndpoint::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // The destructor closed the pipe.
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    Answer(client);
    close(client);
  }
}

void MetricsEndpoint::Answer(int fd) {
  std::string request;
  char buffer[1024];
  const absl::Time deadline = absl::Now() + kRequestDeadline;
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.size() < kMaxRequestBytes) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) return;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, int(std::min<int64_t>(left_ms, kIoTimeoutMs))) <= 0) {
      return;
    }
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    request.append(buffer, size_t(n));
  }
  switch (ClassifyMetricsRequest(request)) {
    case MetricsRequest::kMetrics: {
      const std::string body =
          prometheus::TextSerializer().Serialize(registry_->Collect());
      WriteAll(fd, Reply("200 OK", "text/plain; version=0.0.4; charset=utf-8",
                         body));
      break;
    }
    case MetricsRequest::kMethodNotAllowed:
      WriteAll(fd, Reply("405 Method Not Allowed", "text/plain",
                         "only GET /metrics is served here\n"));
      break;
    case MetricsRequest::kNotFound:
      WriteAll(fd, Reply("404 Not Found", "text/plain",
                         "segserve serves Prometheus metrics at /metrics\n"));
      break;
  }
}

}  // namespace segserve
