// A tiny blocking HTTP/1.1 client for seeding and demos (one connection per request).
// Load uses api/http/load_generator instead.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"

namespace orderflow::cli {

struct HttpTarget {
  std::string host;  // an IPv4 address or "localhost"
  std::uint16_t port = 0;
  std::string token;  // sent as Authorization: Bearer with every request when set
};

// "http://HOST:PORT" (trailing '/' allowed).
Result<HttpTarget> parse_http_target(const std::string& url);

struct HttpAnswer {
  int status = 0;
  std::string body;
};

Result<HttpAnswer> http_request(const HttpTarget& target, const std::string& method, const std::string& path,
                                const std::string& body);

}  // namespace orderflow::cli
