// Routes (method, path pattern) to asynchronous handlers.
//
// Patterns are '/'-separated segments, each a literal or a "{name}" that matches one
// non-empty segment: "/api/v1/orders/{id}/cancel". A literal segment wins over a
// parameter at the same place, whatever the order of registration.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http/message.h"

namespace orderflow::http {

// Runs on the connection's io thread (or, for a route added with RouteOptions::blocking,
// on one of the server's blocking threads); may co_await anything (see await.h for callback
// style back ends). The Request stays valid until the returned awaitable completes.
// Handlers of one router run concurrently on every io thread: they must be thread-safe.
// An exception escaping a handler answers 500 `internal`.
using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;

struct RouteOptions {
  // Accept a body of any Content-Type (otherwise POST/PUT/PATCH bodies must be JSON or
  // the server answers 415 `unsupported_media_type` without calling the handler).
  bool any_content_type = false;
  // The handler may hold its thread for long (a read of many rows: a large page, a slow
  // database), so it runs on the server's blocking threads (ServerOptions::blocking_threads)
  // and the io threads go on answering everything else (/healthz, commands). Not for routes
  // answering a stream.
  bool blocking = false;
};

struct Route;

// Runs before the handler of every matched route (authentication and access rules): an
// answer refuses the request, nullopt lets it through. It may set Request::confined_to.
// Runs on the io threads, concurrently: must be thread-safe.
using Guard = std::function<std::optional<Response>(Request&, const Route&)>;

struct Route {
  Handler handler;
  RouteOptions options;
  std::vector<std::string> param_names;  // in pattern order
  std::string pattern;                   // as added: "/api/v1/orders/{id}"
};

class Router {
 public:
  Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;
  ~Router();

  // REQUIRES: method != Method::other; `pattern` starts with '/', has at most
  // kMaxParams parameters, and (method, pattern) was not added before.
  Router& add(Method method, std::string_view pattern, Handler handler, RouteOptions options = {});

  // Answers every request that no route matches, whatever its method (instead of 404
  // `not_found` or 405 `method_not_allowed`); any Content-Type is accepted. Its Route's
  // pattern is "".
  void otherwise(Handler handler);

  // Every matched request passes the guards first, in the order added, until one refuses it
  // (none by default: every route is open).
  void add_guard(Guard guard) { guards_.push_back(std::move(guard)); }
  const std::vector<Guard>& guards() const { return guards_; }

  enum class Outcome { found, not_found, method_not_allowed };
  struct Match {
    Outcome outcome = Outcome::not_found;
    const Route* route = nullptr;  // when found
    std::string_view allow;        // when method_not_allowed: "GET, POST"
  };

  // Matches a percent-encoded path, preferring a route for `method` to a route with
  // the same shape for other methods. On success appends the decoded parameters to
  // `params`. A parameter with malformed percent-encoding does not match.
  Match match(Method method, std::string_view path, Params& params) const;

  // The table: every (method, pattern) added, sorted.
  std::vector<std::pair<Method, std::string>> routes() const;

  static constexpr std::size_t kMaxParams = 8;

 private:
  struct Node;
  Match match_route(Method method, std::string_view path, Params& params) const;

  std::unique_ptr<Node> root_;
  std::unique_ptr<Route> otherwise_;
  std::vector<Guard> guards_;
};

}  // namespace orderflow::http
