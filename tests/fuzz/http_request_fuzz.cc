// The HTTP request parser as the server runs it (api/http/request_checks.h): any bytes fed
// to Beast's request_parser with the server's head and body limits, in chunks split where
// the first byte says (as reads from a socket split them), request after request
// (pipelining) until the input ends or a request is refused. On every complete head the
// server's framing check runs, then Host against an allow list, the method and the content
// type. Must hold besides "no crash, no sanitizer finding":
// - a head the framing check accepts has one framing: never both Content-Length and
//   Transfer-Encoding, and a Transfer-Encoding only `chunked` alone (which Beast then reads);
// - host_allowed agrees with a reference written from RFC 9110 §7.2 (host, then an
//   optional ":" port of digits), compared case-insensitively.
// Built as the server is, with NDEBUG: Boost 1.81's parser asserts `n >= 5` in
// parse_chunk_header when a chunked body's last CRLF comes in pieces (a wrong assertion,
// the code after it returns need_more: boostorg/beast#2861, fixed upstream in 2024), so a
// build with assertions on stops there at once.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http/request_checks.h"

namespace {

using namespace orderflow::http;
namespace bhttp = boost::beast::http;

const std::vector<std::string>& allowed() {
  static const std::vector<std::string> hosts = {"orderflow.example", "localhost", "127.0.0.1", "[::1]"};
  return hosts;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool same_ci(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Host = uri-host [ ":" port ], port = *DIGIT: the name is allowed when it is one of the
// list and what follows it, if anything, is ":" and digits.
bool reference_host_allowed(std::optional<std::string_view> host) {
  if (!host) return false;
  for (const auto& a : allowed()) {
    if (host->size() < a.size() || !same_ci(host->substr(0, a.size()), a)) continue;
    std::string_view rest = host->substr(a.size());
    if (rest.empty()) return true;
    if (rest.front() != ':') continue;
    rest.remove_prefix(1);
    bool digits = true;
    for (char c : rest) digits = digits && c >= '0' && c <= '9';
    if (digits) return true;
  }
  return false;
}

// The codings of every Transfer-Encoding field, in order, blanks trimmed, empty elements
// skipped (RFC 9110 §5.6.1).
std::vector<std::string_view> codings(const RequestParser::value_type& msg, bool& any_field) {
  std::vector<std::string_view> out;
  for (const auto& field : msg) {
    if (!same_ci(field.name_string(), "transfer-encoding")) continue;
    any_field = true;
    std::string_view list = field.value();
    while (true) {
      const auto comma = list.find(',');
      std::string_view c = list.substr(0, comma);
      while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
      while (!c.empty() && (c.back() == ' ' || c.back() == '\t')) c.remove_suffix(1);
      if (!c.empty()) out.push_back(c);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

void check_head(const RequestParser& parser) {
  const auto& msg = parser.get();
  (void)to_method(msg.method());
  const auto ct = msg.find(bhttp::field::content_type);
  (void)is_json(ct == msg.end() ? std::nullopt : std::optional<std::string_view>(ct->value()));

  const auto host = msg.find(bhttp::field::host);
  const std::optional<std::string_view> h =
      host == msg.end() ? std::nullopt : std::optional<std::string_view>(host->value());
  if (host_allowed(h, allowed()) != reference_host_allowed(h)) std::abort();
}

// Runs the server's check on a complete head; false if the server refuses it (and closes).
bool framing_accepted(const RequestParser& parser) {
  if (ambiguous_framing(parser)) return false;
  const auto& msg = parser.get();
  bool te_field = false;
  const auto te = codings(msg, te_field);
  bool cl_field = false;
  for (const auto& field : msg) cl_field = cl_field || same_ci(field.name_string(), "content-length");
  if (te_field && cl_field) std::abort();
  if (te_field && (te.size() != 1 || !same_ci(te.front(), "chunked") || !parser.chunked())) std::abort();
  if (!te_field && parser.chunked()) std::abort();
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // Chunk sizes: from the first byte, 1..16 bytes, or the rest at once when it is 0.
  const std::size_t step = data[0] % 17;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string pending;  // read but not yet consumed by the parser, as the server's buffer
  std::size_t rotate = 0;
  auto read_some = [&]() -> bool {
    if (input.empty()) return false;
    std::size_t n = step == 0 ? input.size() : 1 + (step + rotate++) % 16;
    if (n > input.size()) n = input.size();
    pending.append(input.substr(0, n));
    input.remove_prefix(n);
    return true;
  };

  for (int requests = 0; requests < 64; ++requests) {
    std::optional<RequestParser> parser;
    parser.emplace();
    limit_parser(*parser, kDefaultHeaderLimit, kDefaultBodyLimit);
    bool head_checked = false;
    for (;;) {
      if (!pending.empty()) {
        boost::system::error_code ec;
        const std::size_t n = parser->put(boost::asio::buffer(pending.data(), pending.size()), ec);
        pending.erase(0, n);
        if (ec && ec != bhttp::error::need_more) {
          (void)is_parse_error(ec);
          return 0;  // answered 400/413 and closed
        }
        if (parser->is_header_done() && !head_checked) {
          if (!framing_accepted(*parser)) return 0;  // 400 and closed
          check_head(*parser);
          head_checked = true;
        }
        if (parser->is_done()) break;
        if (!ec && n > 0 && !pending.empty()) continue;
      }
      if (!read_some()) return 0;  // the client left mid-request
    }
    if (!parser->get().keep_alive()) return 0;
  }
  return 0;
}
