// No Asio here: see request_checks.h.
#include "api/http/request_checks.h"

#include <algorithm>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

namespace orderflow::http {

namespace bhttp = boost::beast::http;

void limit_parser(RequestParser& parser, std::size_t header_limit, std::size_t body_limit) {
  parser.header_limit(static_cast<std::uint32_t>(header_limit));
  parser.body_limit(body_limit);
  parser.eager(true);
}

Method to_method(bhttp::verb v) {
  switch (v) {
    case bhttp::verb::get: return Method::get;
    case bhttp::verb::head: return Method::head;
    case bhttp::verb::post: return Method::post;
    case bhttp::verb::put: return Method::put;
    case bhttp::verb::patch: return Method::patch;
    case bhttp::verb::delete_: return Method::delete_;
    case bhttp::verb::options: return Method::options;
    default: return Method::other;
  }
}

// application/json, parameters ignored. (A +json type such as application/json-patch+json
// means another document with its own semantics, which no route here reads.)
bool is_json(std::optional<std::string_view> content_type) {
  if (!content_type) return false;
  std::string_view t = content_type->substr(0, content_type->find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  return iequals(t, "application/json");
}


// RFC 9112 §6.1 and §6.3: a request whose body length two parsers could read differently
// (one framing it by Content-Length, one by Transfer-Encoding, or a coding this server
// does not decode) would let a second request ride in its body past whatever sits in
// front of this server. Refused with 400 and the connection closed. The only coding read
// here is chunked alone.
std::optional<std::string> ambiguous_framing(const RequestParser& parser) {
  const auto& msg = parser.get();
  bool te_field = false;  // even one that lists no coding ("Transfer-Encoding: ,", found by fuzzing)
  std::size_t codings = 0;
  bool only_chunked = true;
  for (const auto& field : msg) {
    if (field.name() != bhttp::field::transfer_encoding) continue;
    te_field = true;
    std::string_view list = field.value();
    for (std::size_t at = 0; at <= list.size();) {
      auto comma = list.find(',', at);
      if (comma == std::string_view::npos) comma = list.size();
      auto coding = list.substr(at, comma - at);
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
      if (!coding.empty()) {
        ++codings;
        only_chunked = only_chunked && iequals(coding, "chunked");
      }
      at = comma + 1;
    }
  }
  if (!te_field) return std::nullopt;
  if (msg.find(bhttp::field::content_length) != msg.end())
    return "a request may not carry both Content-Length and Transfer-Encoding";
  if (codings != 1 || !only_chunked || !parser.chunked())
    return "Transfer-Encoding must be chunked alone (the only transfer coding this server reads)";
  return std::nullopt;
}

// Is the request's Host one of `allowed` (its port aside: digits only, RFC 9110 §7.2, so
// "localhost:80\x8c0" is not localhost; found by fuzzing)?
bool host_allowed(std::optional<std::string_view> host, const std::vector<std::string>& allowed) {
  if (!host) return false;
  std::string_view name = *host;
  const auto colon = name.rfind(':');
  if (colon != std::string_view::npos && name.find(']', colon) == std::string_view::npos) {
    const auto port = name.substr(colon + 1);
    if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
    name = name.substr(0, colon);
  }
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) { return iequals(a, name); });
}

bool is_parse_error(const boost::system::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

}  // namespace orderflow::http
