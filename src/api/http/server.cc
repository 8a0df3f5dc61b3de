// The only translation unit of the server that sees Beast (its parser) and the sockets.
#include "api/http/server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <charconv>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "api/http/request_checks.h"
#include "core/mutex.h"
#include "core/check.h"
#include "core/log.h"
#include "core/named_thread.h"

namespace orderflow::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;
using TlsStream = asio::ssl::stream<tcp::socket>;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadSize = 16 * 1024;
// How long a closing connection drains what the client still sends (see close_gracefully).
constexpr auto kLinger = std::chrono::seconds(1);
// The most a connection from the reserve gets to send its request (ServerOptions::reserve_connections).
constexpr std::chrono::milliseconds kReserveTimeout{2'000};

// The request's server span (OpenTelemetry's HTTP conventions: named by method and route
// pattern, an error only for a 5xx), under the caller's span when it sent a valid traceparent.
Span server_span(const Request& r, std::string_view route, int status, std::int64_t started_ns) {
  Span s;
  s.context = r.span;
  if (auto caller = parse_traceparent(r.header("traceparent").value_or(""))) s.parent_span_id = caller->parent_id;
  s.name = std::string(r.method_name);
  if (!route.empty()) s.name.append(" ").append(route);
  s.kind = Span::Kind::server;
  s.start_unix_ns = started_ns;
  s.end_unix_ns = now_unix_ns();
  s.error = status >= 500;
  if (s.error) s.status_message = "HTTP " + std::to_string(status);
  s.attributes = {{"http.request.method", std::string(r.method_name)},
                  {"http.response.status_code", std::int64_t{status}}};
  if (!route.empty()) s.attributes.emplace_back("http.route", std::string(route));
  return s;
}

bool valid_field(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name)
    if (c <= ' ' || c == ':' || c == 0x7f) return false;
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

bool valid_response(const Response& res) {
  if (res.status < 200 || res.status > 999) return false;
  return std::all_of(res.headers.begin(), res.headers.end(),
                     [](const auto& h) { return valid_field(h.first, h.second); });
}

void append_number(std::string& out, std::size_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

// The server's side of a StreamWriter. App threads queue; the connection's io thread
// sends. The io objects (the wake timer) are touched on the io thread only, and are gone
// once the stream has ended, so a writer outliving its connection holds nothing of it.
class Stream final : public StreamWriter, public std::enable_shared_from_this<Stream> {
 public:
  explicit Stream(asio::io_context& ioc) : ex_(ioc.get_executor()) { wake_.emplace(ioc); }

  bool write(std::string data) override {
    {
      MutexLock lock(mu_);
      if (!open_) return false;
      queued_ += data.size();
      queue_.push_back(std::move(data));
      if (wake_posted_) return true;
      wake_posted_ = true;
    }
    asio::post(ex_, [self = shared_from_this()] { self->wake(); });
    return true;
  }

  std::size_t queued_bytes() const override {
    MutexLock lock(mu_);
    return queued_;
  }

  bool is_open() const override {
    MutexLock lock(mu_);
    return open_;
  }

  void close() override {
    {
      MutexLock lock(mu_);
      if (!open_) return;
      open_ = false;
    }
    asio::post(ex_, [self = shared_from_this()] { self->wake(); });
  }

  void on_close(std::function<void()> fn) override {
    {
      MutexLock lock(mu_);
      if (!ended_) {
        on_close_ = std::move(fn);
        return;
      }
    }
    if (fn) fn();
  }

  // --- io thread only ---

  enum class Next { send, wait, end };
  // Moves everything queued into `out` (send), or says to wait for more, or that the
  // stream is over: closed with nothing left to send, or the peer is gone.
  Next take(std::vector<std::string>& out) {
    MutexLock lock(mu_);
    if (peer_gone_) return Next::end;
    if (!queue_.empty()) {
      for (auto& s : queue_) out.push_back(std::move(s));
      queue_.clear();
      return Next::send;
    }
    if (!open_) return Next::end;
    wake_posted_ = false;
    return Next::wait;
  }

  void sent(std::size_t bytes) {
    MutexLock lock(mu_);
    queued_ -= bytes;
  }

  void peer_gone() {
    MutexLock lock(mu_);
    peer_gone_ = true;
    open_ = false;
  }

  // Until wake() (or a write()/close() from any thread) is called.
  asio::awaitable<void> wait() {
    wake_->expires_at(Clock::time_point::max());
    co_await wake_->async_wait(nothrow);
  }

  void wake() {
    if (wake_) wake_->cancel();
  }

  // The stream has ended: drop what is queued and run the on_close callback.
  void finish() {
    std::function<void()> fn;
    {
      MutexLock lock(mu_);
      open_ = false;
      ended_ = true;
      queue_.clear();
      queued_ = 0;
      fn = std::move(on_close_);
    }
    wake_.reset();
    if (fn) fn();
  }

 private:
  mutable Mutex mu_;
  std::deque<std::string> queue_ GUARDED_BY(mu_);
  std::size_t queued_ GUARDED_BY(mu_) = 0;
  bool open_ GUARDED_BY(mu_) = true;          // write() still accepts
  bool peer_gone_ GUARDED_BY(mu_) = false;    // the client closed or the socket failed
  bool ended_ GUARDED_BY(mu_) = false;        // finish() ran
  bool wake_posted_ GUARDED_BY(mu_) = false;  // a wake() is on its way; later writes need not post
  std::function<void()> on_close_ GUARDED_BY(mu_);
  asio::io_context::executor_type ex_;
  std::optional<asio::steady_timer> wake_;
};

// Open connections against ServerOptions' caps; shared by the accept loop and every io thread.
class Admission {
 public:
  enum class Kind { regular, reserve, refused };

  explicit Admission(const ServerOptions& o) : opts_(o) {}

  // Counts a new connection from `ip` as what it is admitted as.
  Kind admit(const asio::ip::address& ip) {
    MutexLock lock(mu_);
    auto it = by_ip_.try_emplace(ip, 0).first;
    if (regular_ < opts_.max_connections && it->second < opts_.max_connections_per_ip) {
      ++regular_;
      ++it->second;
      return Kind::regular;
    }
    if (it->second == 0) by_ip_.erase(it);
    if (reserve_ < opts_.reserve_connections) {
      ++reserve_;
      return Kind::reserve;
    }
    return Kind::refused;
  }

  void release(const asio::ip::address& ip, Kind kind) {
    MutexLock lock(mu_);
    if (kind == Kind::reserve) --reserve_;
    if (kind != Kind::regular) return;
    --regular_;
    auto it = by_ip_.find(ip);
    if (--it->second == 0) by_ip_.erase(it);
  }

 private:
  const ServerOptions& opts_;
  Mutex mu_;
  std::size_t regular_ GUARDED_BY(mu_) = 0, reserve_ GUARDED_BY(mu_) = 0;
  std::unordered_map<asio::ip::address, std::size_t> by_ip_ GUARDED_BY(mu_);  // regular connections by client
};

// An admitted connection's place in the Admission counts, given back when it goes.
class Ticket {
 public:
  Ticket(Admission& admission, asio::ip::address ip, Admission::Kind kind)
      : admission_(&admission), ip_(ip), kind_(kind) {}
  Ticket(Ticket&& o) noexcept : admission_(std::exchange(o.admission_, nullptr)), ip_(o.ip_), kind_(o.kind_) {}
  Ticket& operator=(Ticket&&) = delete;
  ~Ticket() {
    if (admission_) admission_->release(ip_, kind_);
  }

  bool reserve() const { return kind_ == Admission::Kind::reserve; }
  const asio::ip::address& ip() const { return ip_; }

 private:
  Admission* admission_;
  asio::ip::address ip_;
  Admission::Kind kind_;
};

// Bytes of answers being written, over all connections (ServerOptions::max_output_bytes).
class OutputBudget {
 public:
  static constexpr std::size_t kSmall = 64 << 10;  // answers this small are always sent

  explicit OutputBudget(std::size_t max) : max_(max) {}

  // Counts `bytes` until the returned share goes; an empty share if they would pass the max.
  class Share {
   public:
    Share() = default;
    Share(OutputBudget* budget, std::size_t bytes) : budget_(budget), bytes_(bytes) {}
    Share(Share&& o) noexcept : budget_(std::exchange(o.budget_, nullptr)), bytes_(o.bytes_) {}
    Share& operator=(Share&& o) noexcept {
      std::swap(budget_, o.budget_);
      std::swap(bytes_, o.bytes_);
      return *this;
    }
    ~Share() {
      if (budget_) budget_->used_.fetch_sub(bytes_);
    }
    explicit operator bool() const { return budget_ != nullptr; }

   private:
    OutputBudget* budget_ = nullptr;
    std::size_t bytes_ = 0;
  };

  Share take(std::size_t bytes) {
    if (used_.fetch_add(bytes) + bytes <= max_) return Share(this, bytes);
    used_.fetch_sub(bytes);
    return {};
  }

 private:
  const std::size_t max_;
  std::atomic<std::size_t> used_{0};
};

// What the io thread's deadline sweep and stop see of a connection (a Session of either kind).
class Connection {
 public:
  Clock::time_point deadline() const { return deadline_; }
  virtual void close_now() = 0;
  // The server is stopping: close now if nothing is in progress.
  virtual void on_stop() = 0;

 protected:
  ~Connection() = default;
  Clock::time_point deadline_ = Clock::time_point::max();
};

// One io thread: its io_context and the connections living on it. Everything here is
// touched on that thread only.
struct Worker {
  Worker(const Router& r, const ServerOptions& o, OutputBudget& b, Clock::duration t, asio::io_context* blocking)
      : router(r), opts(o), output(b), tick(t), blocking(blocking) {}
  // Destroying ioc below destroys the frames of connections still open (after a forced
  // stop); their sessions must not touch the sweeper, already gone by then.
  ~Worker() { destroying = true; }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves one connection; with `tls`, TLS over `socket` (the handshake first). The frame
  // keeps `tls` for the connection's life.
  asio::awaitable<void> serve(tcp::socket socket, Ticket ticket, std::shared_ptr<asio::ssl::context> tls);
  void arm_sweep();
  void sweep_once();
  void begin_stop(Clock::time_point deadline);

  const Router& router;
  const ServerOptions& opts;
  OutputBudget& output;
  const Clock::duration tick;     // how often deadlines are checked
  asio::io_context* const blocking;  // where RouteOptions::blocking handlers run; null: here
  std::list<Connection*> sessions;  // declared before ioc: outlives the frames it destroys
  asio::io_context ioc{1};
  asio::steady_timer sweeper{ioc};
  bool stopping = false;
  bool cut = false;  // the stop deadline passed and every connection was closed
  bool destroying = false;
  Clock::time_point stop_deadline;
};

// One connection, over `Socket`: tcp::socket, or TlsStream (HTTPS). Lives in the frame of
// Worker::serve.
template <class Socket>
class Session final : public Connection {
 public:
  static constexpr bool kTls = std::is_same_v<Socket, TlsStream>;

  Session(Worker& w, Socket socket, Ticket ticket)
      : w_(w), socket_(std::move(socket)), ticket_(std::move(ticket)), client_address_(ticket_.ip().to_string()) {
    pos_ = w_.sessions.insert(w_.sessions.end(), this);
    req_.client_address = client_address_;
  }
  ~Session() {
    w_.sessions.erase(pos_);
    if (w_.stopping && w_.sessions.empty() && !w_.destroying) w_.sweeper.cancel();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  asio::awaitable<void> run();

  void close_now() override {
    error_code ignored;
    socket_.lowest_layer().close(ignored);
  }

  // An idle connection's read is cancelled, not closed: if a request already arrived (its
  // completion queued behind this), it is served and answered with Connection: close;
  // closing here would let it run and then lose its answer.
  void on_stop() override {
    switch (state_) {
      case State::idle: {
        error_code ignored;
        socket_.lowest_layer().cancel(ignored);
        break;
      }
      case State::closing: close_now(); break;
      case State::streaming: stream_->close(); break;
      case State::reading:
      case State::busy: break;
    }
  }

 private:
  enum class State { idle, reading, busy, streaming, closing };

  void set_deadline(std::chrono::milliseconds timeout) { deadline_ = Clock::now() + timeout; }
  // For the request head (and, from the reserve, its body).
  std::chrono::milliseconds head_timeout() const {
    return ticket_.reserve() ? std::min(w_.opts.header_timeout, kReserveTimeout) : w_.opts.header_timeout;
  }
  void clear_deadline() { deadline_ = Clock::time_point::max(); }

  asio::awaitable<error_code> read(bool whole_message);
  asio::awaitable<Response> dispatch();
  asio::awaitable<bool> write(const Response& res, bool keep_alive);
  asio::awaitable<void> reject(const error_code& ec);
  asio::awaitable<void> close_gracefully(bool client_may_send);
  asio::awaitable<void> stream(Response& res);
  asio::awaitable<void> watch_peer(Stream& st);

  Worker& w_;
  Socket socket_;
  Ticket ticket_;
  const std::string client_address_;
  std::list<Connection*>::iterator pos_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Request req_;
  std::string head_;  // the response head, reused
  State state_ = State::idle;
  Stream* stream_ = nullptr;  // while streaming
  bool watcher_done_ = false;
  bool answered_ = false;  // a request was answered on this connection
  std::string_view route_;  // the pattern dispatch() matched, for observe
};

template <class Socket>
asio::awaitable<void> Session<Socket>::run() {
  if constexpr (kTls) {  // within the header timeout, as the first request's head would be
    set_deadline(head_timeout());
    auto [ec] = co_await socket_.async_handshake(asio::ssl::stream_base::server, nothrow);
    if (ec) co_return;
  }
  for (;;) {
    // A stop that came while the last answer was being written: it said keep-alive.
    if (w_.stopping) co_return co_await close_gracefully(false);
    req_.path_params.clear();
    req_.query.clear();
    req_.headers.clear();
    req_.caller.clear();
    req_.confined_to.clear();
    parser_.emplace();
    limit_parser(*parser_, w_.opts.header_limit, w_.opts.body_limit);

    state_ = buffer_.size() == 0 ? State::idle : State::reading;
    // A connection that has not sent a request yet gets the header timeout to start one:
    // the idle timeout is for keep-alive between requests (a silent connection is not a
    // client waiting to send again).
    set_deadline(state_ == State::idle && answered_ ? w_.opts.idle_timeout : head_timeout());
    if (auto ec = co_await read(false)) co_return co_await reject(ec);
    if (auto ambiguous = ambiguous_framing(*parser_)) {  // what follows cannot be trusted as a request
      const Response res = error_response(400, "invalid_request", *ambiguous);
      state_ = State::busy;
      if (co_await write(res, false)) co_await close_gracefully(true);
      co_return;
    }

    state_ = State::reading;
    if (!parser_->is_done()) {
      const auto expect = parser_->get()[bhttp::field::expect];
      if (iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        set_deadline(w_.opts.write_timeout);
        auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(kContinue), nothrow);
        if (ec) co_return;
      }
      set_deadline(ticket_.reserve() ? head_timeout() : w_.opts.body_timeout);
      if (auto ec = co_await read(true)) co_return co_await reject(ec);
    }

    state_ = State::busy;
    clear_deadline();
    const auto started = Clock::now();
    const auto started_ns = tracing_enabled() ? now_unix_ns() : 0;
    Response res = co_await dispatch();
    if (w_.opts.observe)
      w_.opts.observe(Observation{req_.method, route_, res.status, Clock::now() - started, res.body.size(),
                                  req_.span.trace_id});
    if (started_ns && req_.span.sampled()) record_span(server_span(req_, route_, res.status, started_ns));
    if (res.stream) co_return co_await stream(res);
    OutputBudget::Share share;  // a large answer's bytes, counted while they are written
    const bool large = req_.method == Method::get && res.body.size() > OutputBudget::kSmall;
    if (large && !(share = w_.output.take(res.body.size()))) {
      res = error_response(503, "unavailable", "the server is sending too much to slow readers: retry later");
      res.set_header("Retry-After", "1");
    }
    const bool keep_alive = parser_->get().keep_alive() && !w_.stopping && !ticket_.reserve();
    if (!co_await write(res, keep_alive)) co_return;
    answered_ = true;
    if (!keep_alive) co_return co_await close_gracefully(false);
  }
}

// Feeds the parser from the buffer, reading more as needed, until the head (or the
// whole message) is parsed. Moves from idle to reading at the first byte.
template <class Socket>
asio::awaitable<error_code> Session<Socket>::read(bool whole_message) {
  auto done = [&] { return whole_message ? parser_->is_done() : parser_->is_header_done(); };
  for (;;) {
    if (buffer_.size() > 0) {
      error_code ec;
      const std::size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      if (ec && ec != bhttp::error::need_more) co_return ec;
      if (done()) co_return error_code{};
      if (!ec && n > 0 && buffer_.size() > 0) continue;
    }
    auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(kReadSize), nothrow);
    buffer_.commit(n);
    if (ec == asio::error::eof) {
      if (!parser_->got_some() && buffer_.size() == 0) co_return bhttp::error::end_of_stream;
      co_return bhttp::error::partial_message;
    }
    if (ec) co_return ec;
    if (state_ == State::idle) {
      state_ = State::reading;
      set_deadline(head_timeout());
    }
  }
}

// Answers a request that could not be read: 413 or 400 if the client can still hear
// it, then closes.
template <class Socket>
asio::awaitable<void> Session<Socket>::reject(const error_code& ec) {
  Response res;
  if (ec == bhttp::error::body_limit) {
    res = error_response(413, "payload_too_large",
                         "the request body is larger than " + std::to_string(w_.opts.body_limit) + " bytes");
  } else if (ec == bhttp::error::header_limit) {
    res = error_response(400, "invalid_request",
                         "the request head is larger than " + std::to_string(w_.opts.header_limit) + " bytes");
  } else if (is_parse_error(ec)) {
    res = error_response(400, "invalid_request", "malformed HTTP request");
  } else {
    co_return;  // the client left or timed out
  }
  state_ = State::busy;
  if (co_await write(res, false)) co_await close_gracefully(true);
}

template <class Socket>
asio::awaitable<Response> Session<Socket>::dispatch() {
  auto& msg = parser_->get();
  Request& r = req_;
  route_ = {};
  r.method = to_method(msg.method());
  r.method_name = msg.method_string();
  r.target = msg.target();
  const auto q = r.target.find('?');
  r.path = r.target.substr(0, q);
  for (const auto& field : msg) r.headers.add(field.name_string(), field.value());
  r.body = std::move(msg.body());
  r.span = child_span(parse_traceparent(r.header("traceparent").value_or("")));

  if (ticket_.reserve() && std::find(w_.opts.always_served.begin(), w_.opts.always_served.end(), r.path) ==
                               w_.opts.always_served.end()) {
    Response res = error_response(503, "unavailable", "too many connections: retry later");
    res.set_header("Retry-After", "1");
    co_return res;
  }

  if (!w_.opts.allowed_hosts.empty() && !host_allowed(r.header("host"), w_.opts.allowed_hosts))
    co_return error_response(421, "misdirected_request",
                             "Host " + std::string(r.header("host").value_or("(none)")) +
                                 " is not a name of this server (serve --allowed-hosts)");
  if (q != std::string_view::npos && !parse_query(r.target.substr(q + 1), r.query))
    co_return error_response(400, "invalid_request", "malformed query string");
  const auto m = w_.router.match(r.method, r.path, r.path_params);
  route_ = m.route ? std::string_view(m.route->pattern) : std::string_view();
  switch (m.outcome) {
    case Router::Outcome::not_found:
      co_return error_response(404, "not_found", "no such route");
    case Router::Outcome::method_not_allowed: {
      Response res = error_response(405, "method_not_allowed",
                                    std::string(r.method_name) + " is not allowed here; allowed: " + std::string(m.allow));
      res.set_header("Allow", std::string(m.allow));
      co_return res;
    }
    case Router::Outcome::found: break;
  }
  for (const auto& guard : w_.router.guards())
    if (auto refused = guard(r, *m.route)) co_return std::move(*refused);
  // A request that changes state is JSON even without a body: a web page can send a form
  // or text/plain to any site, but application/json to another origin only if that origin
  // agrees to it first (a CORS preflight this server never grants), so no page a user
  // or an operator opens can place orders or start rebuilds here (CSRF).
  const bool changes_state = r.method == Method::post || r.method == Method::put || r.method == Method::patch ||
                             r.method == Method::delete_;
  if (changes_state && !m.route->options.any_content_type && !is_json(r.header("content-type")))
    co_return error_response(415, "unsupported_media_type",
                             r.body.empty() ? "a request that changes state must be sent with Content-Type: "
                                              "application/json, even without a body"
                                            : "the request body must be application/json");

  std::string failure;
  try {
    Response res;  // (not a ?: of two co_awaits: g++ 12 miscompiles that)
    if (m.route->options.blocking && w_.blocking)
      res = co_await asio::co_spawn(*w_.blocking, m.route->handler(r), asio::use_awaitable);
    else
      res = co_await m.route->handler(r);
    if (valid_response(res)) co_return res;
    failure = "invalid status or header field";
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  log::error("http", "handler failed: " + failure, {{"method", r.method_name}, {"path", r.path}});
  co_return error_response(500, "internal", "internal error");
}

template <class Socket>
asio::awaitable<bool> Session<Socket>::write(const Response& res, bool keep_alive) {
  const auto reason = bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(res.status)));
  head_.assign("HTTP/1.1 ");
  append_number(head_, static_cast<std::size_t>(res.status));
  head_.append(" ").append(reason.data(), reason.size()).append("\r\n");
  bool typed = false, cached = false;
  for (const auto& [name, value] : res.headers) {
    if (iequals(name, "content-length") || iequals(name, "connection") ||
        iequals(name, "transfer-encoding") || iequals(name, "x-content-type-options"))
      continue;
    typed = typed || iequals(name, "content-type");
    cached = cached || iequals(name, "cache-control");
    head_.append(name).append(": ").append(value).append("\r\n");
  }
  if (!typed) head_.append("Content-Type: application/json\r\n");
  // A browser never guesses another type for a body (a JSON answer run as a script), and
  // nothing on the way keeps an answer that is the state of the moment, unless the route
  // says otherwise.
  head_.append("X-Content-Type-Options: nosniff\r\n");
  if (!cached) head_.append("Cache-Control: no-store\r\n");
  const bool bodiless = res.status == 204 || res.status == 304;
  if (!res.stream && !bodiless) {
    head_.append("Content-Length: ");
    append_number(head_, res.body.size());
    head_.append("\r\n");
  }
  if (res.stream || !keep_alive) {
    head_.append("Connection: close\r\n");
  } else if (parser_->get().version() < 11) {
    head_.append("Connection: keep-alive\r\n");
  }
  head_.append("\r\n");

  const bool send_body = !res.stream && !bodiless && req_.method != Method::head;
  const std::array<asio::const_buffer, 2> buffers{
      asio::buffer(head_), send_body ? asio::buffer(res.body) : asio::const_buffer()};
  set_deadline(w_.opts.write_timeout);
  auto [ec, n] = co_await asio::async_write(socket_, buffers, nothrow);
  clear_deadline();
  co_return !ec;
}

// Half-closes, then closes. If the client may still be sending (a rejected request, or
// bytes beyond the last answered request), drains them for a moment first: closing
// with unread bytes resets the connection and can destroy the answer in flight.
template <class Socket>
asio::awaitable<void> Session<Socket>::close_gracefully([[maybe_unused]] bool client_may_send) {
  state_ = State::closing;
  if constexpr (kTls) {
    // close_notify, then whatever the client still sends, until its own close_notify, its
    // close or the linger's end.
    deadline_ = Clock::now() + kLinger;
    co_await socket_.async_shutdown(nothrow);
  } else {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    if (client_may_send || buffer_.size() > 0 || socket_.available(ignored) > 0) {
      deadline_ = Clock::now() + kLinger;
      for (;;) {
        buffer_.clear();
        auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(kReadSize), nothrow);
        if (ec) break;
      }
    }
  }
  close_now();
}

template <class Socket>
asio::awaitable<void> Session<Socket>::stream(Response& res) {
  auto st = std::make_shared<Stream>(w_.ioc);
  stream_ = st.get();
  state_ = State::streaming;
  try {
    res.stream(st);
  } catch (const std::exception& e) {
    log::error("http", std::string("stream start failed: ") + e.what(),
               {{"method", req_.method_name}, {"path", req_.path}});
    st->close();
  }

  bool watching = false;
  if (co_await write(res, false)) {
    asio::co_spawn(w_.ioc, watch_peer(*st), asio::detached);
    watching = true;
    std::vector<std::string> batch;
    std::vector<asio::const_buffer> buffers;
    for (;;) {
      const auto next = st->take(batch);
      if (next == Stream::Next::end) break;
      if (next == Stream::Next::wait) {
        co_await st->wait();
        continue;
      }
      std::size_t bytes = 0;
      buffers.clear();
      for (const auto& s : batch) {
        buffers.push_back(asio::buffer(s));
        bytes += s.size();
      }
      set_deadline(w_.opts.write_timeout);
      auto [ec, n] = co_await asio::async_write(socket_, buffers, nothrow);
      clear_deadline();
      st->sent(bytes);
      batch.clear();
      if (ec) break;
    }
  }
  close_now();
  while (watching && !watcher_done_) co_await st->wait();  // the watcher refers to us
  stream_ = nullptr;
  st->finish();
}

// Reads (and drops) whatever the client sends while streaming, to notice it leaving.
template <class Socket>
asio::awaitable<void> Session<Socket>::watch_peer(Stream& st) {
  std::array<char, 512> scratch;
  for (;;) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(scratch), nothrow);
    if (ec) break;
  }
  st.peer_gone();
  watcher_done_ = true;
  st.wake();
}

asio::awaitable<void> Worker::serve(tcp::socket socket, Ticket ticket, std::shared_ptr<asio::ssl::context> tls) {
  if (stopping) co_return;
  if (tls) {
    Session<TlsStream> session(*this, TlsStream(std::move(socket), *tls), std::move(ticket));
    co_await session.run();
  } else {
    Session<tcp::socket> session(*this, std::move(socket), std::move(ticket));
    co_await session.run();
  }
}

// Deadlines are checked by one timer per io thread rather than one per connection:
// setting a deadline is then a store, not a timer operation.
void Worker::arm_sweep() {
  sweeper.expires_after(tick);
  sweeper.async_wait([this](error_code) { sweep_once(); });
}

void Worker::sweep_once() {
  if (stopping && sessions.empty()) return;  // nothing left: let run() return
  const auto now = Clock::now();
  if (stopping && now >= stop_deadline) {
    if (cut) {
      ioc.stop();  // connections stuck in handlers: give up on them
      return;
    }
    cut = true;
    for (Connection* s : sessions) s->close_now();
  } else {
    for (Connection* s : sessions)
      if (s->deadline() <= now) s->close_now();
  }
  arm_sweep();
}

void Worker::begin_stop(Clock::time_point deadline) {
  stopping = true;
  stop_deadline = deadline;
  for (Connection* s : sessions) s->on_stop();
  if (sessions.empty()) sweeper.cancel();
}

// A server context for `files`, TLS 1.2 and later; invalid_argument naming the file at fault.
Result<std::shared_ptr<asio::ssl::context>> load_tls(const TlsFiles& files) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  error_code ec;
  ctx->use_certificate_chain_file(files.certificate_chain, ec);
  if (ec)
    return fail(Errc::invalid_argument, "cannot use the certificate chain " + files.certificate_chain + ": " + ec.message());
  ctx->use_private_key_file(files.private_key, asio::ssl::context::pem, ec);
  // OpenSSL checks here that the key is the certificate's ("key values mismatch").
  if (ec) return fail(Errc::invalid_argument, "cannot use the private key " + files.private_key + ": " + ec.message());
  return ctx;
}

Clock::duration sweep_tick(const ServerOptions& o) {
  const auto shortest = std::min({o.idle_timeout, o.header_timeout, o.body_timeout,
                                  o.write_timeout, o.shutdown_timeout});
  return std::clamp<Clock::duration>(shortest / 8, std::chrono::milliseconds(5),
                                     std::chrono::milliseconds(500));
}

}  // namespace

// The threads running RouteOptions::blocking handlers (ServerOptions::blocking_threads).
struct BlockingThreads {
  void start(int n) {
    for (int i = 0; i < n; ++i) threads.push_back(named_thread("of-http-block", [this] { ioc.run(); }));
  }
  // Once nothing can hand them more (the io threads have returned): they finish what they
  // hold and return.
  void join() {
    idle.reset();
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }

  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> idle = asio::make_work_guard(ioc);
  std::vector<std::thread> threads;
};

struct HttpServer::Impl {
  Impl(Router r, ServerOptions o)
      : router(std::move(r)), opts(std::move(o)), workers(make_workers(router, opts, output, blocking)) {}

  static std::vector<std::unique_ptr<Worker>> make_workers(const Router& r, const ServerOptions& o,
                                                           OutputBudget& b, BlockingThreads& blocking) {
    OF_CHECK(o.io_threads >= 1, "an HttpServer needs an io thread");
    OF_CHECK(o.blocking_threads >= 0, "an HttpServer's blocking_threads is negative");
    std::vector<std::unique_ptr<Worker>> out;
    for (int i = 0; i < o.io_threads; ++i)
      out.push_back(std::make_unique<Worker>(r, o, b, sweep_tick(o), o.blocking_threads > 0 ? &blocking.ioc : nullptr));
    return out;
  }

  asio::awaitable<void> accept_loop();
  void stop();
  Result<void> reload_tls();
  asio::awaitable<void> reload_on_signals();

  Router router;
  ServerOptions opts;
  // Before the workers, whose sessions give their tickets and shares back to them.
  Admission admission{opts};
  OutputBudget output{opts.max_output_bytes};
  // Before the workers: joined by join() before their connections' frames go.
  BlockingThreads blocking;
  std::vector<std::unique_ptr<Worker>> workers;  // before the io objects living on them
  tcp::acceptor acceptor{workers.front()->ioc};
  std::optional<asio::signal_set> signals;
  std::optional<asio::signal_set> reload_signals;
  Mutex tls_mu;
  std::shared_ptr<asio::ssl::context> tls GUARDED_BY(tls_mu);  // what new connections get; null: plain HTTP
  std::vector<std::thread> threads;
  std::atomic<bool> stop_requested{false};
  bool started = false;
  std::uint16_t port = 0;
};

void HttpServer::Impl::stop() {
  if (stop_requested.exchange(true)) return;
  const auto deadline = Clock::now() + opts.shutdown_timeout;
  asio::post(workers.front()->ioc, [this] {
    error_code ignored;
    acceptor.close(ignored);
    if (signals) signals->cancel(ignored);
    if (reload_signals) reload_signals->cancel(ignored);
  });
  for (auto& w : workers) asio::post(w->ioc, [w = w.get(), deadline] { w->begin_stop(deadline); });
}

Result<void> HttpServer::Impl::reload_tls() {
  if (!opts.tls) return fail(Errc::invalid_argument, "this server does not serve TLS");
  OF_ASSIGN_OR_RETURN(auto ctx, load_tls(*opts.tls));
  MutexLock lock(tls_mu);
  tls = std::move(ctx);
  return {};
}

asio::awaitable<void> HttpServer::Impl::reload_on_signals() {
  for (;;) {
    auto [ec, signal] = co_await reload_signals->async_wait(nothrow);
    if (ec) co_return;  // stopping
    if (auto r = reload_tls(); !r) {
      log::error("http", "TLS reload failed, new connections keep the certificate they had: " + r.error().message);
    } else {
      log::info("http", "TLS certificate and key reloaded: new connections get them",
                {{"certificate", opts.tls->certificate_chain}, {"key", opts.tls->private_key}});
    }
  }
}

asio::awaitable<void> HttpServer::Impl::accept_loop() {
  asio::steady_timer pause(workers.front()->ioc);
  for (std::size_t next = 0;; ++next) {
    Worker& w = *workers[next % workers.size()];
    auto [ec, socket] = co_await acceptor.async_accept(w.ioc, nothrow);
    if (!acceptor.is_open()) co_return;
    if (ec) {  // out of descriptors, or a connection reset before it was taken
      pause.expires_after(std::chrono::milliseconds(10));
      co_await pause.async_wait(nothrow);
      continue;
    }
    error_code ignored;
    const auto peer = socket.remote_endpoint(ignored);
    if (ignored) continue;  // already gone
    const auto kind = admission.admit(peer.address());
    if (kind == Admission::Kind::refused) continue;  // closed as `socket` goes
    Ticket ticket(admission, peer.address(), kind);
    socket.set_option(tcp::no_delay(true), ignored);
    std::shared_ptr<asio::ssl::context> ctx;
    if (opts.tls) {
      MutexLock lock(tls_mu);
      ctx = tls;
    }
    asio::co_spawn(w.ioc, w.serve(std::move(socket), std::move(ticket), std::move(ctx)), asio::detached);
  }
}

Result<void> check_tls(const TlsFiles& files) {
  OF_RETURN_IF_ERROR(load_tls(files));
  return {};
}

namespace {

// Binds `a` to host:port (and listens), as HttpServer::listen and check_listen do.
Result<void> bind_acceptor(tcp::acceptor& a, const std::string& host, std::uint16_t port) {
  const std::string where = host + ":" + std::to_string(port);
  error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address(host, ec), port);
  if (ec) {
    tcp::resolver resolver(a.get_executor());
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty())
      return fail(Errc::invalid_argument, "cannot resolve " + where + ": " + ec.message());
    endpoint = results.begin()->endpoint();
  }
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(Errc::unavailable, "cannot listen on " + where + ": " + ec.message());
  return {};
}

}  // namespace

Result<void> check_listen(const std::string& host, std::uint16_t port) {
  asio::io_context ioc;
  tcp::acceptor a(ioc);
  return bind_acceptor(a, host, port);
}

Result<HttpServer> HttpServer::listen(Router router, ServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(router), std::move(options));
  const auto& o = impl->opts;
  if (o.tls) {
    OF_ASSIGN_OR_RETURN(auto ctx, load_tls(*o.tls));
    MutexLock lk(impl->tls_mu);  // nothing else uses it yet: for the analysis
    impl->tls = std::move(ctx);
  }
  OF_RETURN_IF_ERROR(bind_acceptor(impl->acceptor, o.host, o.port));
  error_code ec;
  impl->port = impl->acceptor.local_endpoint(ec).port();
  if (ec) return fail(Errc::unavailable, "cannot listen on " + o.host + ": " + ec.message());
  return HttpServer(std::move(impl));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::HttpServer(HttpServer&&) noexcept = default;
HttpServer& HttpServer::operator=(HttpServer&&) noexcept = default;

HttpServer::~HttpServer() {
  if (!impl_) return;
  stop();
  join();
}

std::uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::start() {
  OF_CHECK(!impl_->started, "HttpServer::start called twice");
  impl_->started = true;
  for (auto& w : impl_->workers) w->arm_sweep();
  asio::co_spawn(impl_->workers.front()->ioc, impl_->accept_loop(), asio::detached);
  if (impl_->signals)
    impl_->signals->async_wait([impl = impl_.get()](const error_code& ec, int) {
      if (!ec) impl->stop();
    });
  if (impl_->reload_signals) asio::co_spawn(impl_->workers.front()->ioc, impl_->reload_on_signals(), asio::detached);
  for (auto& w : impl_->workers) impl_->threads.push_back(named_thread("of-http", [&ioc = w->ioc] { ioc.run(); }));
  impl_->blocking.start(impl_->opts.blocking_threads);
}

void HttpServer::join() {
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->blocking.join();
}

void HttpServer::run() {
  start();
  join();
}

void HttpServer::stop() { impl_->stop(); }

void HttpServer::stop_on_signals(std::initializer_list<int> signals) {
  auto& set = impl_->signals.emplace(impl_->workers.front()->ioc);
  for (int s : signals) set.add(s);
}

Result<void> HttpServer::reload_tls() { return impl_->reload_tls(); }

void HttpServer::reload_tls_on_signals(std::initializer_list<int> signals) {
  auto& set = impl_->reload_signals.emplace(impl_->workers.front()->ioc);
  for (int s : signals) set.add(s);
}

}  // namespace orderflow::http
