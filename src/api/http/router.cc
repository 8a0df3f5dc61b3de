#include "api/http/router.h"

#include <algorithm>
#include <array>
#include <boost/url/pct_string_view.hpp>

#include "core/check.h"

namespace orderflow::http {

// A trie of path segments; a node with routes ends a pattern.
struct Router::Node {
  std::string literal;  // of a literal child
  std::vector<std::unique_ptr<Node>> literals;
  std::unique_ptr<Node> param;
  std::array<std::unique_ptr<Route>, kMethodCount> routes;
  std::string allow;  // the methods with a route, for 405
};

namespace {

constexpr std::size_t kMaxSegments = 32;
using Segments = std::array<std::string_view, kMaxSegments>;
using Captures = std::array<std::string_view, Router::kMaxParams>;

std::size_t index_of(Method m) { return static_cast<std::size_t>(m); }

// Splits "/a/b" into {"a", "b"}; false if not absolute or too deep to be one of ours.
bool split(std::string_view path, Segments& out, std::size_t& count) {
  if (path.empty() || path[0] != '/') return false;
  count = 0;
  std::size_t start = 1;
  for (;;) {
    if (count == kMaxSegments) return false;
    const auto slash = path.find('/', start);
    out[count++] = path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

}  // namespace

Router::Router() : root_(std::make_unique<Node>()) {}
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;
Router::~Router() = default;

Router& Router::add(Method method, std::string_view pattern, Handler handler, RouteOptions options) {
  OF_CHECK(method != Method::other, "routes need a known method");
  Segments segs;
  std::size_t count = 0;
  OF_CHECK(split(pattern, segs, count), "a route pattern starts with '/'");
  auto route = std::make_unique<Route>(Route{std::move(handler), options, {}, std::string(pattern)});
  Node* node = root_.get();
  for (std::size_t i = 0; i < count; ++i) {
    const std::string_view seg = segs[i];
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      route->param_names.emplace_back(seg.substr(1, seg.size() - 2));
      if (!node->param) node->param = std::make_unique<Node>();
      node = node->param.get();
      continue;
    }
    Node* next = nullptr;
    for (auto& child : node->literals)
      if (child->literal == seg) next = child.get();
    if (!next) {
      node->literals.push_back(std::make_unique<Node>());
      next = node->literals.back().get();
      next->literal = seg;
    }
    node = next;
  }
  OF_CHECK(route->param_names.size() <= kMaxParams, "too many parameters in a route pattern");
  OF_CHECK(!node->routes[index_of(method)], "route added twice");
  node->routes[index_of(method)] = std::move(route);
  node->allow.clear();
  for (std::size_t m = 0; m < kMethodCount; ++m) {
    if (!node->routes[m]) continue;
    if (!node->allow.empty()) node->allow += ", ";
    node->allow += method_name(static_cast<Method>(m));
  }
  return *this;
}

void Router::otherwise(Handler handler) {
  otherwise_ = std::make_unique<Route>(Route{.handler = std::move(handler), .options = {.any_content_type = true}});
}

Router::Match Router::match(Method method, std::string_view path, Params& params) const {
  auto m = match_route(method, path, params);
  if (m.outcome != Outcome::found && otherwise_) return Match{Outcome::found, otherwise_.get(), {}};
  return m;
}

Router::Match Router::match_route(Method method, std::string_view path, Params& params) const {
  // Depth-first, literals before parameters, stopping at the first route for `method`.
  struct Search {
    Method method;
    Segments segs;
    std::size_t count = 0;
    Captures caps;
    const Route* found = nullptr;
    std::string_view allow;  // of the first node of the right shape, for 405

    bool walk(const Node& n, std::size_t i, std::size_t ncaps) {
      if (i == count) {
        found = n.routes[index_of(method)].get();
        if (!found && allow.empty()) allow = n.allow;
        return found != nullptr;
      }
      const std::string_view seg = segs[i];
      for (const auto& child : n.literals) {
        if (child->literal != seg) continue;
        if (walk(*child, i + 1, ncaps)) return true;
        break;
      }
      if (n.param && !seg.empty() && ncaps < kMaxParams) {
        caps[ncaps] = seg;
        if (walk(*n.param, i + 1, ncaps + 1)) return true;
      }
      return false;
    }
  };

  Search s{method};
  if (!split(path, s.segs, s.count)) return {};
  if (!s.walk(*root_, 0, 0)) {
    if (s.allow.empty()) return {};
    return Match{Outcome::method_not_allowed, nullptr, s.allow};
  }
  const auto& names = s.found->param_names;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (!boost::urls::make_pct_string_view(s.caps[i])) return {};
  for (std::size_t i = 0; i < names.size(); ++i) params.add_encoded(names[i], s.caps[i], false);
  return Match{Outcome::found, s.found, {}};
}

std::vector<std::pair<Method, std::string>> Router::routes() const {
  std::vector<std::pair<Method, std::string>> out;
  auto walk = [&out](const Node& n, auto& self) -> void {
    for (std::size_t m = 0; m < kMethodCount; ++m)
      if (n.routes[m]) out.emplace_back(static_cast<Method>(m), n.routes[m]->pattern);
    for (const auto& child : n.literals) self(*child, self);
    if (n.param) self(*n.param, self);
  };
  walk(*root_, walk);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace orderflow::http
