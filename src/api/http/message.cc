#include "api/http/message.h"

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

Response error_response(int status, std::string_view code, std::string_view message,
                        const boost::json::object& details) {
  boost::json::object error;
  error["code"] = code;
  error["message"] = message;
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
