// An HTTP/1.1 server (Boost.Beast parser, Asio coroutines) in front of a Router.
//
// Each io thread runs its own io_context; a connection lives on one of them, so its
// handler calls, reads and writes never need a lock. Requests on one connection are
// answered one at a time, in order (keep-alive and pipelining).
//
//   http::Router router;
//   router.add(http::Method::get, "/healthz", [](http::Request&) -> asio::awaitable<http::Response> {
//     co_return http::json_response(200, R"({"status":"ok"})");
//   });
//   auto server = http::HttpServer::listen(std::move(router), {.port = 8080});
//   if (!server) …;
//   server->stop_on_signals({SIGINT, SIGTERM});
//   server->run();  // until stop() or a signal, then drained
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/http/router.h"
#include "core/result.h"

namespace orderflow::http {

// One answered request, as ServerOptions::observe sees it (metrics).
struct Observation {
  Method method;
  std::string_view route;  // the matched route's pattern; "" when no route matched
  int status;
  std::chrono::nanoseconds elapsed;  // from the end of the request to the answer being ready
  std::size_t bytes;                 // of the response body (0 when it is streamed)
  std::string_view trace_id;         // of the request's span
};

// PEM files: the certificate chain (the server's first) and its private key (unencrypted).
struct TlsFiles {
  std::string certificate_chain;
  std::string private_key;
};

// Can `files` serve TLS (readable, well-formed, the key the certificate's)? invalid_argument
// naming the file at fault.
Result<void> check_tls(const TlsFiles& files);

// Can this process listen on host:port (a name resolves, the port is free)? Binds a socket
// and closes it: what listen() would answer, asked before opening anything else.
// invalid_argument (a name that does not resolve), unavailable (the port is taken).
Result<void> check_listen(const std::string& host, std::uint16_t port);

struct ServerOptions {
  std::string host = "127.0.0.1";  // an address or a name to resolve
  std::uint16_t port = 0;          // 0: the system picks a free one, see HttpServer::port()
  int io_threads = 2;
  // Threads running the handlers of routes added with RouteOptions::blocking; 0: those run on
  // the io threads too.
  int blocking_threads = 4;
  std::size_t body_limit = 1 << 20;    // larger bodies: 413 `payload_too_large`, then close
  std::size_t header_limit = 16 << 10;  // larger heads: 400 `invalid_request`, then close
  // A connection is closed when a deadline passes (checked a few times per timeout):
  std::chrono::milliseconds idle_timeout{60'000};    // between requests: the next one's first byte
  std::chrono::milliseconds header_timeout{10'000};  // connect (or first byte) to the end of the head
  std::chrono::milliseconds body_timeout{30'000};    // end of the head to the end of the body
  std::chrono::milliseconds write_timeout{30'000};   // each response (or streamed chunk batch)
  // stop(): how long in-flight requests and streams get to finish before connections are
  // cut and the io threads stop.
  std::chrono::milliseconds shutdown_timeout{10'000};
  // When not empty, a request whose Host (its port aside, compared case-insensitively; IPv6 as
  // "[::1]") is none of these is answered 421 `misdirected_request`: a page that a browser
  // loaded from another name cannot reach this server by pointing that name at its address
  // (DNS rebinding).
  std::vector<std::string> allowed_hosts;
  // Connections open at once, in all and from one client address. One over either cap is
  // taken from a small reserve instead: it gets min(header_timeout, 2 s) to send one request,
  // which is answered if its path is one of `always_served` (health checks still see the
  // server) and is otherwise 503 `unavailable` with Retry-After; then it is closed. With the
  // reserve full too, a new connection is closed at once.
  std::size_t max_connections = 4096;
  std::size_t max_connections_per_ip = 256;
  std::size_t reserve_connections = 64;
  std::vector<std::string> always_served = {"/healthz", "/readyz"};
  // Bytes of answers being written at once, over all connections. A GET whose answer is over
  // 64 KiB and would pass this is answered 503 `unavailable` (Retry-After: 1) instead, so
  // clients that do not read cannot make the server hold unbounded memory; each connection
  // holds one answer at a time and is cut off if it takes longer than write_timeout.
  std::size_t max_output_bytes = 256 << 20;
  // When set, every connection is TLS (1.2 or later) with these files, read at listen() and
  // again by HttpServer::reload_tls(); plain HTTP is then not served on this port.
  std::optional<TlsFiles> tls;
  // Called on the io thread after each request is answered (not for malformed HTTP); may be
  // empty. Must be thread-safe and quick.
  std::function<void(const Observation&)> observe;
};

class HttpServer {
 public:
  // Binds and listens (so port() is known at once); serves nothing until start()/run().
  static Result<HttpServer> listen(Router router, ServerOptions options);

  HttpServer(HttpServer&&) noexcept;
  HttpServer& operator=(HttpServer&&) noexcept;
  // Stops and joins if still running. REQUIRES: no back end will still call a pending
  // await_callback `done` or a StreamWriter after this.
  ~HttpServer();

  std::uint16_t port() const;

  // Starts the io threads and returns.
  void start();
  // Blocks until the server has stopped and every io thread has returned.
  void join();
  // start() then join().
  void run();

  // Thread-safe, idempotent, returns at once. Stops accepting, closes idle keep-alive
  // connections, lets requests in progress finish (their answers say Connection: close),
  // ends streams after what is queued, all within shutdown_timeout; then join() returns.
  void stop();

  // stop() when one of these signals arrives. Call before start().
  void stop_on_signals(std::initializer_list<int> signals);

  // Reads ServerOptions::tls's files again: connections accepted from now on use them, those
  // open keep theirs. On failure (a missing, unreadable or malformed file, a key that is not
  // the certificate's) nothing changes. Thread-safe.
  Result<void> reload_tls();

  // reload_tls() whenever one of these signals arrives, logging the outcome. Call before start().
  void reload_tls_on_signals(std::initializer_list<int> signals);

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace orderflow::http
