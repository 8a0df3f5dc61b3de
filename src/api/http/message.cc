#include "api/http/message.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/decode_view.hpp>
#include <boost/url/pct_string_view.hpp>

namespace orderflow::http {

std::string_view method_name(Method method) {
  switch (method) {
    case Method::get: return "GET";
    case Method::head: return "HEAD";
    case Method::post: return "POST";
    case Method::put: return "PUT";
    case Method::patch: return "PATCH";
    case Method::delete_: return "DELETE";
    case Method::options: return "OPTIONS";
    case Method::other: return "OTHER";
  }
  return "OTHER";
}

namespace {
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::optional<std::string_view> Params::find(std::string_view key) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    auto [k, v] = (*this)[i];
    if (k == key) return v;
  }
  return std::nullopt;
}

std::pair<std::string_view, std::string_view> Params::operator[](std::size_t i) const {
  const Entry& e = entries_[i];
  std::string_view text(text_);
  return {text.substr(e.key_at, e.key_size), text.substr(e.value_at, e.value_size)};
}

void Params::clear() {
  text_.clear();
  entries_.clear();
}

void Params::add(std::string_view key, std::string_view value) {
  Entry e{};
  e.key_at = static_cast<std::uint32_t>(text_.size());
  e.key_size = static_cast<std::uint32_t>(key.size());
  text_ += key;
  e.value_at = static_cast<std::uint32_t>(text_.size());
  e.value_size = static_cast<std::uint32_t>(value.size());
  text_ += value;
  entries_.push_back(e);
}

bool Params::add_encoded(std::string_view key, std::string_view value, bool plus_is_space) {
  auto k = boost::urls::make_pct_string_view(key);
  auto v = boost::urls::make_pct_string_view(value);
  if (!k || !v) return false;
  boost::urls::encoding_opts opts(plus_is_space);
  const std::size_t start = text_.size();
  Entry e{};
  e.key_at = static_cast<std::uint32_t>(start);
  for (char c : boost::urls::decode_view(*k, opts)) text_ += c;
  e.key_size = static_cast<std::uint32_t>(text_.size() - start);
  e.value_at = static_cast<std::uint32_t>(text_.size());
  for (char c : boost::urls::decode_view(*v, opts)) text_ += c;
  e.value_size = static_cast<std::uint32_t>(text_.size() - e.value_at);
  entries_.push_back(e);
  return true;
}

// Split by hand: Boost.URL 1.81's parse_query reads the last value past the end of a
// view that is not the end of its string (as a request target inside a buffer is).
bool parse_query(std::string_view query, Params& out) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2"
    const auto eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (!out.add_encoded(key, value, true)) return false;
  }
  return true;
}

std::optional<std::string_view> Headers::find(std::string_view name) const {
  for (const auto& [n, v] : fields_)
    if (iequals(n, name)) return v;
  return std::nullopt;
}

Response json_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response json_response(int status, const boost::json::object& body) {
  return json_response(status, boost::json::serialize(body));
}

Response json_response(int status, const boost::json::array& body) {
  return json_response(status, boost::json::serialize(body));
}

Response error_response(int status, std::string_view code, std::string_view message) {
  return error_response(status, code, message, boost::json::object{});
}

namespace {

// The length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n == 0 || s.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i)
    if ((b(i) & 0xc0) != 0x80) return 0;
  if ((c == 0xe0 && b(1) < 0xa0) || (c == 0xed && b(1) > 0x9f) || (c == 0xf0 && b(1) < 0x90) ||
      (c == 0xf4 && b(1) > 0x8f))
    return 0;
  return n;
}

}  // namespace

// Messages may quote what a client sent (a method, an id): the answer stays valid JSON
// (a byte that is not UTF-8 becomes U+FFFD) and short (at most kMaxMessage bytes, the
// last three an ellipsis when it was cut).
std::string printable_message(std::string_view message) {
  constexpr std::size_t kMaxMessage = 512;
  std::string out;
  out.reserve(std::min(message.size(), kMaxMessage + 3));
  while (!message.empty()) {
    const std::size_t n = utf8_sequence(message);
    if (out.size() + std::max<std::size_t>(n, 3) > kMaxMessage - 3) {  // room left for the ellipsis
      out.append("\u2026");
      break;
    }
    if (n == 0) {
      out.append("\xef\xbf\xbd");
      message.remove_prefix(1);
    } else {
      out.append(message.substr(0, n));
      message.remove_prefix(n);
    }
  }
  return out;
}

Response error_response(int status, std::string_view code, std::string_view message,
                        const boost::json::object& details) {
  boost::json::object error;
  error["code"] = code;
  error["message"] = printable_message(message);
  error["details"] = details;
  boost::json::object body;
  body["error"] = std::move(error);
  return json_response(status, boost::json::serialize(body));
}

Response sse_response(StreamStart start) {
  Response r;
  r.set_header("Content-Type", "text/event-stream");
  r.set_header("Cache-Control", "no-cache");
  r.stream = std::move(start);
  return r;
}

std::string sse_event(std::string_view id, std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(id.size() + event.size() + data.size() + 32);
  if (!id.empty()) out.append("id: ").append(id).append("\n");
  if (!event.empty()) out.append("event: ").append(event).append("\n");
  for (;;) {
    const auto nl = data.find('\n');
    out.append("data: ").append(data.substr(0, nl)).append("\n");
    if (nl == std::string_view::npos) break;
    data.remove_prefix(nl + 1);
  }
  out += '\n';
  return out;
}

}  // namespace orderflow::http
