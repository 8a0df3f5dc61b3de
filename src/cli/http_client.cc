#include "cli/http_client.h"

#include <arpa/inet.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace orderflow::cli {

Result<HttpTarget> parse_http_target(const std::string& url) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    try {
      port = std::stoi(rest.substr(colon + 1));
    } catch (const std::exception&) {
      port = -1;
    }
  }
  if (port <= 0 || port > 65535) return fail(Errc::invalid_argument, "the target must be http://HOST:PORT, not " + url);
  return HttpTarget{rest.substr(0, colon), static_cast<std::uint16_t>(port)};
}

Result<HttpAnswer> http_request(const HttpTarget& t, const std::string& method, const std::string& path,
                                const std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Errc::unavailable, "socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(t.port);
  if (::inet_pton(AF_INET, t.host == "localhost" ? "127.0.0.1" : t.host.c_str(), &addr.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return fail(Errc::unavailable, fmt::format("cannot connect to {}:{}", t.host, t.port));
  }
  auto request = fmt::format(
      "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}"
      "Connection: close\r\n\r\n{}",
      method, path, t.host, body.size(), t.token.empty() ? "" : "Authorization: Bearer " + t.token + "\r\n", body);
  for (std::size_t sent = 0; sent < request.size();) {
    auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto head_end = answer.find("\r\n\r\n");
  if (answer.size() < 12 || head_end == std::string::npos)
    return fail(Errc::unavailable, fmt::format("no answer to {} {}", method, path));
  return HttpAnswer{std::stoi(answer.substr(9, 3)), answer.substr(head_end + 4)};
}

}  // namespace orderflow::cli
