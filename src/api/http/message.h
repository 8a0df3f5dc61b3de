// HTTP requests and responses as handlers see them: plain C++ types, no Beast.
//
// A Request is filled by the server and lent to one handler call. Its string_views point
// into the connection's buffers and stay valid until the handler's awaitable completes;
// copy what must live longer.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/trace.h"

namespace orderflow::http {

enum class Method : std::uint8_t { get, head, post, put, patch, delete_, options, other };
inline constexpr int kMethodCount = 8;

std::string_view method_name(Method method);  // "GET", …; "OTHER" for other

// ASCII case-insensitive equality, as header names and media types compare.
bool iequals(std::string_view a, std::string_view b);

// Decoded name/value pairs (path parameters, query parameters), kept in one reusable
// buffer so a connection parses request after request without allocating.
class Params {
 public:
  // The value of the first pair named `key`.
  std::optional<std::string_view> find(std::string_view key) const;
  std::size_t size() const { return entries_.size(); }
  std::pair<std::string_view, std::string_view> operator[](std::size_t i) const;

  void clear();
  void add(std::string_view key, std::string_view value);
  // Appends a pair given percent-encoded; in a query '+' also means a space.
  // Returns false (adding nothing) if the encoding is malformed.
  bool add_encoded(std::string_view key, std::string_view value, bool plus_is_space);

 private:
  struct Entry {
    std::uint32_t key_at, key_size, value_at, value_size;
  };
  std::string text_;
  std::vector<Entry> entries_;
};

// Parses a raw query string ("a=1&b=x%20y", without '?') into `out`, appending.
// Returns false if it is malformed.
bool parse_query(std::string_view query, Params& out);

// Request header fields in arrival order. Views into the connection's buffers.
class Headers {
 public:
  // The value of the first field named `name`, compared case-insensitively.
  std::optional<std::string_view> find(std::string_view name) const;
  std::size_t size() const { return fields_.size(); }
  const std::pair<std::string_view, std::string_view>& operator[](std::size_t i) const {
    return fields_[i];
  }
  void clear() { fields_.clear(); }
  void add(std::string_view name, std::string_view value) { fields_.emplace_back(name, value); }

 private:
  std::vector<std::pair<std::string_view, std::string_view>> fields_;
};

struct Request {
  Method method = Method::other;
  std::string_view method_name;  // as sent, e.g. for Method::other
  std::string_view target;       // path and query as sent, still percent-encoded
  std::string_view path;         // target before '?', still percent-encoded
  Params path_params;            // decoded, named as in the route pattern
  Params query;                  // decoded
  Headers headers;
  std::string body;
  std::string_view client_address;  // the peer's IP address: "127.0.0.1", "::1"
  // Set by the router's guard: who sent it as authenticated ("customer:c-17"), empty
  // without authentication; and the one customer whose data this request may touch (a
  // customer's token), empty when not confined.
  std::string caller;
  std::string confined_to;
  // This request's span (core/trace.h), set by the server before the router: in the trace
  // of the request's valid `traceparent`, else in a new one. Commands keep it in their
  // events' metadata; the server exports it when tracing and sampled.
  TraceParent span;

  // A path parameter of the matched route ("" if the pattern has no such name).
  std::string_view param(std::string_view name) const { return path_params.find(name).value_or(""); }
  std::optional<std::string_view> query_param(std::string_view name) const { return query.find(name); }
  std::optional<std::string_view> header(std::string_view name) const { return headers.find(name); }
};

// A streaming response body (Server-Sent Events), owned by the server once the handler
// returns a Response with `stream` set.
//
// Thread safety: every method may be called from any thread at any time while the
// HttpServer exists. Once the stream has ended, calls do nothing.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;

  // Queues `data` to be sent as is. Returns false (and drops it) once close() was called
  // or the stream ended. Never blocks: watch queued_bytes() to spot a slow consumer.
  virtual bool write(std::string data) = 0;

  // Bytes accepted by write() that the socket has not yet taken.
  virtual std::size_t queued_bytes() const = 0;

  // False after close() or once the stream ended (client gone, write timeout, server stop).
  virtual bool is_open() const = 0;

  // Ends the stream once the bytes already queued are sent, then closes the connection.
  virtual void close() = 0;

  // `fn` runs exactly once, when the stream has ended for whatever reason: on an io
  // thread, or at once on the caller's thread if it already has. Replaces an earlier fn.
  virtual void on_close(std::function<void()> fn) = 0;
};

using StreamStart = std::function<void(std::shared_ptr<StreamWriter>)>;

struct Response {
  int status = 200;
  std::string body;
  // Extra header fields. A Content-Type here replaces the default application/json.
  // The server owns framing: Content-Length, Connection and Transfer-Encoding are ignored.
  std::vector<std::pair<std::string, std::string>> headers;
  // Set to stream the body instead: the server sends status and headers, calls `stream`
  // with the writer (on the io thread, before anything is sent), then sends whatever is
  // written until the writer is closed. The body ends with the connection.
  StreamStart stream;

  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

Response json_response(int status, std::string body);  // body: JSON text
Response json_response(int status, const boost::json::object& body);
Response json_response(int status, const boost::json::array& body);

// docs/api.md §3: {"error": {"code": …, "message": …, "details": {…}}}.
// `message` as an error answer carries it: UTF-8 (invalid bytes replaced), at most 512 bytes.
std::string printable_message(std::string_view message);
Response error_response(int status, std::string_view code, std::string_view message);
Response error_response(int status, std::string_view code, std::string_view message,
                        const boost::json::object& details);

// 200 text/event-stream, not cached, streamed through `start`.
Response sse_response(StreamStart start);

// One Server-Sent Event; `id` and `event` are left out when empty, a multi-line `data`
// becomes several data lines. Ends with the blank line that dispatches it.
std::string sse_event(std::string_view id, std::string_view event, std::string_view data);

}  // namespace orderflow::http
