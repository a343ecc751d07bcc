// The HTTP transport on loopback with raw sockets: answers from other
// threads, keep-alive, chunked bodies, the limits, unanswered requests and
// clients that leave.
#include "server/http/http_server.h"

#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/http_get.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServer::Handler handler,
             HttpServer::Options options = HttpServer::Options()) {
    options.host = "127.0.0.1";
    options.port = 0;
    auto server = HttpServer::Create(std::move(options), std::move(handler));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Echoes what it was asked, from a thread of its own.
  void StartEcho(HttpServer::Options options = HttpServer::Options()) {
    Start(
        [](HttpRequest request, HttpReply reply) {
          std::thread([request = std::move(request),
                       reply = std::move(reply)]() mutable {
            HttpResponse response;
            response.content_type = "text/plain";
            response.body =
                absl::StrCat(request.method, " ", request.body.size());
            for (const std::string& segment : request.segments) {
              absl::StrAppend(&response.body, " [", segment, "]");
            }
            for (const auto& [key, value] : request.query) {
              absl::StrAppend(&response.body, " ", key, "=", value);
            }
            reply.Send(std::move(response));
          }).detach();
        },
        std::move(options));
  }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AnswersFromAnotherThread) {
  StartEcho();
  const std::string reply = HttpExchange(
      server_->port(),
      "POST /v2/models/a%2Fb/infer?x=1+2&y=%41 HTTP/1.1\r\nHost: h\r\n"
      "Content-Length: 5\r\nConnection: close\r\n\r\nhello");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200"));
  // Each segment decoded on its own: an encoded slash stays in its segment.
  EXPECT_THAT(reply, HasSubstr("POST 5 [v2] [models] [a/b] [infer] x=1 2 y=A"));
}

TEST_F(HttpServerTest, KeepsConnectionsAlive) {
  StartEcho();
  const int fd = ConnectLoopback(server_->port());
  ASSERT_GE(fd, 0);
  const std::string request = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(write(fd, request.data(), request.size()),
              ssize_t(request.size()));
    char buffer[4096];
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    ASSERT_GT(n, 0) << "answer " << i;
    EXPECT_THAT(std::string(buffer, size_t(n)), HasSubstr("GET 0 [a]"));
  }
  close(fd);
}

TEST_F(HttpServerTest, TakesChunkedBodies) {
  StartEcho();
  const std::string reply = HttpExchange(
      server_->port(),
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
  EXPECT_THAT(reply, HasSubstr("POST 7 [c]"));
}

TEST_F(HttpServerTest, RefusesBodiesOverTheLimit) {
  HttpServer::Options options;
  options.max_body_bytes = 100;
  StartEcho(options);
  const std::string reply =
      HttpExchange(server_->port(),
                   "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: "
                   "1000000000\r\nConnection: close\r\n\r\nabc");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 413"));
  // Chunks that add up past the limit too.
  std::string chunks =
      "POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\n\r\n";
  for (int i = 0; i < 20; ++i) chunks += "a\r\n0123456789\r\n";
  chunks += "0\r\n\r\n";
  EXPECT_THAT(HttpExchange(server_->port(), chunks),
              StartsWith("HTTP/1.1 413"));
}

TEST_F(HttpServerTest, RefusesHeadersOverTheLimit) {
  HttpServer::Options options;
  options.max_header_bytes = 2048;
  StartEcho(options);
  std::string request = "GET /h HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 200; ++i)
    request += absl::StrCat("X-Flood-", i, ": y\r\n");
  request += "\r\n";
  const std::string reply = HttpExchange(server_->port(), request);
  // Refused or cut off, never handed to the handler.
  EXPECT_THAT(reply, ::testing::Not(HasSubstr("GET 0 [h]")));
}

TEST_F(HttpServerTest, AnUnansweredRequestGets500) {
  Start([](HttpRequest, HttpReply) {});  // Drops the reply.
  EXPECT_THAT(HttpGet(server_->port(), "/x"),
              StartsWith("HTTP/1.0 500 Internal Server Error"));
}

TEST_F(HttpServerTest, SlowClientsAreClosed) {
  HttpServer::Options options;
  options.io_timeout = absl::Seconds(1);
  StartEcho(options);
  const int fd = ConnectLoopback(server_->port());
  ASSERT_GE(fd, 0);
  const std::string part = "GET /slow HTTP/1.1\r\nHost:";  // And no more.
  ASSERT_EQ(write(fd, part.data(), part.size()), ssize_t(part.size()));
  const absl::Time start = absl::Now();
  const std::string reply = ReadAll(fd);  // Until the server closes.
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  EXPECT_THAT(reply, ::testing::Not(HasSubstr("[slow]")));
  close(fd);
}

// libevent 2.1 reads nothing more from a connection while its request
// runs, so a client that leaves is noticed when its answer is written: the
// answer goes nowhere, and the server serves on.
TEST_F(HttpServerTest, AnAnswerToAClientThatLeftGoesNowhere) {
  auto seen = std::make_shared<absl::Notification>();
  auto answer = std::make_shared<absl::Notification>();
  Start([seen, answer](HttpRequest request, HttpReply reply) {
    if (request.segments == std::vector<std::string>{"next"}) {
      reply.Send(HttpResponse());
      return;
    }
    std::thread([reply = std::move(reply), seen, answer]() mutable {
      seen->Notify();
      answer->WaitForNotification();
      reply.Send(HttpResponse());
    }).detach();
  });
  const int fd = ConnectLoopback(server_->port());
  ASSERT_GE(fd, 0);
  const std::string request = "GET /leave HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(write(fd, request.data(), request.size()), ssize_t(request.size()));
  seen->WaitForNotification();
  close(fd);
  absl::SleepFor(absl::Milliseconds(50));
  answer->Notify();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_THAT(HttpGet(server_->port(), "/next"), StartsWith("HTTP/1.0 200"));
}

TEST_F(HttpServerTest, DrainingClosesKeepAliveConnections) {
  StartEcho();
  server_->StartDraining();
  const std::string reply = HttpExchange(
      server_->port(), "GET /d HTTP/1.1\r\nHost: h\r\n\r\n");  // Keep-alive.
  EXPECT_THAT(reply, HasSubstr("Connection: close"));
  EXPECT_THAT(reply, HasSubstr("GET 0 [d]"));
}

TEST_F(HttpServerTest, APortInUseIsAnError) {
  StartEcho();
  HttpServer::Options options;
  options.host = "127.0.0.1";
  options.port = server_->port();
  auto second = HttpServer::Create(options, [](HttpRequest, HttpReply) {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot listen"));
}

}  // namespace
}  // namespace segserve
