#ifndef SEGSERVE_TESTS_SERVER_HTTP_GET_H_
#define SEGSERVE_TESTS_SERVER_HTTP_GET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace segserve {

// GET http://127.0.0.1:<port><path> with HTTP/1.0; returns the whole reply
// (headers and body), or "" when the connection fails.
inline std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
      0) {
    const std::string request =
        "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == ssize_t(request.size())) {
      char buffer[65536];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof(buffer))) > 0)
        reply.append(buffer, n);
    }
  }
  close(fd);
  return reply;
}

}  // namespace segserve

#endif  // SEGSERVE_TESTS_SERVER_HTTP_GET_H_
