// The server's checks on a parsed request that need no socket and no coroutine: framing
// (RFC 9112 §6), Host, the method and the content type. Kept apart from server.cc, whose
// Asio coroutines clang 14 with the sanitizers cannot compile, so that the fuzz target
// tests/fuzz/http_request_fuzz.cc can feed them whatever Beast's parser accepts.
#pragma once

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http/message.h"

namespace orderflow::http {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// ServerOptions' defaults (server.cc checks they agree).
inline constexpr std::size_t kDefaultBodyLimit = 1 << 20;
inline constexpr std::size_t kDefaultHeaderLimit = 16 << 10;

// A fresh parser as the server reads each request with: its head and body limits, eager.
void limit_parser(RequestParser& parser, std::size_t header_limit, std::size_t body_limit);

Method to_method(boost::beast::http::verb v);

// application/json, parameters ignored.
bool is_json(std::optional<std::string_view> content_type);

// Why a parsed head's framing is refused (400, connection closed), or nullopt: never both
// Content-Length and Transfer-Encoding, and Transfer-Encoding only `chunked` alone.
std::optional<std::string> ambiguous_framing(const RequestParser& parser);

// Is the request's Host one of `allowed` (its port, digits only, aside)?
bool host_allowed(std::optional<std::string_view> host, const std::vector<std::string>& allowed);

// A malformed request (400), rather than the client leaving mid-request.
bool is_parse_error(const boost::system::error_code& ec);

}  // namespace orderflow::http
