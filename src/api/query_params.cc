#include "api/query_params.h"

#include <charconv>
#include <string>

namespace orderflow::api {

Result<std::int64_t> parse_int(std::string_view text, std::string_view name, std::int64_t min, std::int64_t max) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < min || n > max)
    return fail(Errc::invalid_argument,
                std::string(name) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
  return n;
}

Result<std::int64_t> int_param(const http::Request& req, std::string_view name, std::int64_t fallback,
                               std::int64_t min, std::int64_t max) {
  auto v = req.query_param(name);
  if (!v) return fallback;
  return parse_int(*v, name, min, max);
}

http::Response with_etag(http::Response r, es::StreamVersion version) {
  r.set_header("ETag", "\"" + to_string(version) + "\"");
  return r;
}

}  // namespace orderflow::api
