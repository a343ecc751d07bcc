#ifndef SEGSERVE_TESTS_SERVER_HTTP_GET_H_
#define SEGSERVE_TESTS_SERVER_HTTP_GET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>

namespace segserve {

// A loopback TCP connection to 127.0.0.1:<port> (fd -1 when it fails) whose
// reads give up after `timeout_s`, so a test never hangs on a server.
inline int ConnectLoopback(int port, int timeout_s = 10) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval timeout{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until the server closes the connection (or the read times out).
inline std::string ReadAll(int fd) {
  std::string reply;
  char buffer[65536];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) reply.append(buffer, n);
  return reply;
}

// Sends `request` (raw bytes) and returns everything the server answers
// until it closes the connection; "" when the connection fails.
inline std::string HttpExchange(int port, const std::string& request) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  std::string reply;
  if (write(fd, request.data(), request.size()) == ssize_t(request.size())) {
    reply = ReadAll(fd);
  }
  close(fd);
  return reply;
}

// GET http://127.0.0.1:<port><path> with HTTP/1.0; returns the whole reply
// (headers and body), or "" when the connection fails.
inline std::string HttpGet(int port, const std::string& path) {
  return HttpExchange(port,
                      "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
}

}  // namespace segserve

#endif  // SEGSERVE_TESTS_SERVER_HTTP_GET_H_
