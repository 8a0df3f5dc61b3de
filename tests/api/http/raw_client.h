// A blocking HTTP/1.1 test client on plain sockets, so tests control every byte sent
// (half heads, pipelining, lying Content-Length) and see exactly what comes back.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orderflow::http::testing {

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n.size() != name.size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < n.size(); ++i)
        same = same && (std::tolower(static_cast<unsigned char>(n[i])) ==
                        std::tolower(static_cast<unsigned char>(name[i])));
      if (same) return v;
    }
    return "";
  }
};

class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One response: the head, then Content-Length bytes of body (or, without a length,
  // everything until the server closes). nullopt on timeout or a close before a head.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(deadline)) return std::nullopt;
    RawResponse r;
    std::string_view head(in_.data(), end);
    auto line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    if (status_line.size() < 12) return std::nullopt;
    r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
    std::optional<std::size_t> length;
    while (line_end != std::string_view::npos) {
      head.remove_prefix(line_end + 2);
      line_end = head.find("\r\n");
      const std::string_view line = head.substr(0, line_end);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) break;
      std::string name(line.substr(0, colon));
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      r.headers.emplace_back(name, std::string(value));
    }
    if (auto cl = r.header("Content-Length"); !cl.empty()) length = std::stoul(cl);
    in_.erase(0, end + 4);
    if (length) {
      while (in_.size() < *length)
        if (!fill(deadline)) return std::nullopt;
      r.body = in_.substr(0, *length);
      in_.erase(0, *length);
    } else if (r.status >= 200 && r.status != 204 && r.status != 304) {
      while (fill(deadline)) {
      }
      r.body = std::move(in_);
      in_.clear();
    }
    return r;
  }

  // Reads whatever arrives within `timeout` (stops early at a close).
  std::string read_some(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    return std::exchange(in_, {});
  }

  // Appends data to the buffer until `stop(buffer)` or the deadline/close. Returns the buffer.
  template <class Pred>
  const std::string& read_until(Pred stop, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!stop(in_) && fill(deadline)) {
    }
    return in_;
  }

  // True if the server closes the connection within `timeout` (after anything unread).
  bool closed_by_peer(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    return eof_;
  }

 private:
  // Reads once; false on timeout, close or error.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (eof_) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    in_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string in_;
};

}  // namespace orderflow::http::testing
