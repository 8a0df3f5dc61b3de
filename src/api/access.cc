#include "api/access.h"

#include <fmt/core.h>

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <utility>

#include "api/errors.h"
#include "api/json_body.h"
#include "api/metrics.h"
#include "core/text.h"
#include "core/time.h"

namespace orderflow::api {

namespace {

using http::Method;
using http::Request;
using http::Response;

constexpr Access kOpen{.open = true};
constexpr Access kAdmin{};
constexpr Access kOperator{.operator_may = true};
// Admins, and customers as `c` says (operators do not write to accounts and orders).
constexpr Access writes(CustomerAccess c, std::string_view field = {}) { return Access{.customer = c, .field = field}; }
// Admins and operators, and customers as `c` says.
constexpr Access reads(CustomerAccess c, std::string_view field = {}) {
  return Access{.operator_may = true, .customer = c, .field = field};
}

// Every route of the API. Operators read everything and run the operations' writes
// (rebuilds, dead-letter retries, shipping); customers place and read their own orders and
// open, fund, read and withdraw from their own account.
const std::map<std::pair<Method, std::string_view>, Access>& table() {
  static const std::map<std::pair<Method, std::string_view>, Access> rules{
      {{Method::get, "/healthz"}, kOpen},
      {{Method::get, "/readyz"}, kOpen},
      {{Method::get, "/metrics"}, kOpen},
      // The contract is public (it is in the repository); a browser's docs page sends no token.
      {{Method::get, "/api/v1/openapi.json"}, kOpen},
      {{Method::get, "/docs"}, kOpen},
      {{Method::get, "/docs/redoc.standalone.js"}, kOpen},

      {{Method::post, "/api/v1/products"}, kAdmin},
      {{Method::post, "/api/v1/products/{id}/restock"}, kAdmin},
      {{Method::post, "/api/v1/accounts"}, writes(CustomerAccess::names_self, "account_id")},
      {{Method::post, "/api/v1/accounts/{id}/deposit"}, writes(CustomerAccess::path_id)},
      {{Method::post, "/api/v1/accounts/{id}/withdraw"}, writes(CustomerAccess::path_id)},
      {{Method::post, "/api/v1/orders"}, writes(CustomerAccess::names_self, "customer_id")},
      {{Method::post, "/api/v1/orders/{id}/cancel"}, writes(CustomerAccess::own_order)},
      {{Method::put, "/api/v1/orders/{id}/shipping-status"}, kOperator},

      {{Method::get, "/api/v1/orders/{id}"}, reads(CustomerAccess::own_order)},
      {{Method::get, "/api/v1/orders/{id}/events"}, reads(CustomerAccess::own_order)},
      {{Method::get, "/api/v1/orders"}, reads(CustomerAccess::names_self, "customer_id")},
      {{Method::get, "/api/v1/customers/{id}/orders"}, reads(CustomerAccess::path_id)},
      {{Method::get, "/api/v1/products/{id}"}, reads(CustomerAccess::any)},
      {{Method::get, "/api/v1/products"}, reads(CustomerAccess::any)},
      {{Method::get, "/api/v1/accounts/{id}"}, reads(CustomerAccess::path_id)},
      {{Method::get, "/api/v1/accounts/{id}/transactions"}, reads(CustomerAccess::path_id)},
      {{Method::get, "/api/v1/analytics/sales"}, kOperator},

      {{Method::get, "/api/v1/admin/streams/{stream_id}/events"}, kOperator},
      {{Method::get, "/api/v1/admin/events"}, kOperator},
      {{Method::get, "/api/v1/admin/projections"}, kOperator},
      {{Method::post, "/api/v1/admin/projections/{name}/rebuild"}, kOperator},
      {{Method::get, "/api/v1/admin/sagas"}, kOperator},
      {{Method::get, "/api/v1/admin/sagas/{order_id}"}, kOperator},
      {{Method::get, "/api/v1/admin/dead-letters"}, kOperator},
      {{Method::post, "/api/v1/admin/dead-letters/{id}/retry"}, kOperator},
      {{Method::get, "/api/v1/admin/invariants"}, kOperator},
      {{Method::get, "/api/v1/admin/relay"}, kOperator},
      {{Method::get, "/api/v1/events/stream"}, kOperator},
      // Destroys a customer's key: admins only (as every route not listed here).
      {{Method::delete_, "/api/v1/customers/{id}/personal-data"}, kAdmin},
  };
  return rules;
}

Response unauthorized(std::string_view message, bool token_sent) {
  auto r = http::error_response(401, "unauthorized", message);
  // RFC 6750 §3: say which scheme, and whether the token sent was the trouble.
  r.set_header("WWW-Authenticate", token_sent ? R"(Bearer error="invalid_token")" : "Bearer");
  return r;
}

Response forbidden(const Request& req, Role role) {
  return http::error_response(403, "forbidden",
                              "a " + std::string(role_name(role)) + " token may not " + std::string(req.method_name) +
                                  " this route");
}

// The customer a request names in `field` (CustomerAccess::names_self); "" if none. A body
// that is not a JSON object names none: its handler refuses it.
std::string named_customer(const Request& req, std::string_view field) {
  if (req.method == Method::get) return std::string(req.query_param(field).value_or(""));
  auto body = parse_object(req.body);
  const auto* v = body ? body->if_contains(field) : nullptr;
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::optional<Response> over_limit(const RateLimits& limits, std::string_view caller, bool by_token) {
  const auto wait = limits.limiter.take(caller, http::RateLimiter::Clock::now());
  if (!wait) return std::nullopt;
  if (limits.metrics) limits.metrics->count_rate_limited(by_token);
  Error refused{Errc::rate_limited,
                fmt::format("more than {:g} requests a second (bursts of {:g}) from {}: retry later",
                            limits.limiter.limit().rate, limits.limiter.limit().burst,
                            by_token ? "this token" : "this address")};
  refused.retry_after_s = static_cast<std::int64_t>(*wait);
  return error_for(refused);
}

std::optional<Response> check_customer(ApiContext& ctx, Request& req, const Access& access, const Claims& claims) {
  req.confined_to = claims.sub;
  switch (access.customer) {
    case CustomerAccess::none: return forbidden(req, Role::customer);
    case CustomerAccess::any: return std::nullopt;
    case CustomerAccess::names_self: {
      const auto named = named_customer(req, access.field);
      if (named.empty() || named == claims.sub) return std::nullopt;
      return http::error_response(403, "forbidden", "a customer token acts only for its own customer_id " + claims.sub);
    }
    case CustomerAccess::path_id:
      if (req.param("id") == claims.sub) return std::nullopt;
      return http::error_response(404, "not_found", "no such resource of customer " + claims.sub);
    case CustomerAccess::own_order: {
      // Read from the log itself (never behind).
      auto owner = ctx.events.order_owner(ascii_lower(req.param("id")));
      if (!owner) return error_for(owner.error());
      if (*owner == claims.sub) return std::nullopt;
      return http::error_response(404, "not_found", "no order " + std::string(req.param("id")));
    }
  }
  return forbidden(req, Role::customer);
}

}  // namespace

Access access_of(Method method, std::string_view pattern) {
  const auto& rules = table();
  auto it = rules.find({method, pattern});
  return it == rules.end() ? kAdmin : it->second;
}

void require_tokens(http::Router& router, ApiContext& ctx, const KeyRing& keys, std::optional<RateLimits> limits) {
  auto verifier = std::make_shared<TokenVerifier>(keys);
  router.add_guard([&ctx, verifier, limits](Request& req, const http::Route& route) -> std::optional<Response> {
    const Access access = access_of(req.method, route.pattern);
    if (access.open) return std::nullopt;
    const auto header = req.header("authorization");
    if (!header) return unauthorized("this route needs an Authorization: Bearer token", false);
    constexpr std::string_view kScheme = "Bearer ";
    if (header->size() <= kScheme.size() || !http::iequals(header->substr(0, kScheme.size()), kScheme))
      return unauthorized("the Authorization header must be Bearer followed by a token", false);
    auto claims = verifier->verify(header->substr(kScheme.size()), now_unix_ms() / 1000);
    if (!claims) return unauthorized(claims.error().message, true);
    req.caller = std::string(role_name(claims->role));
    if (!claims->sub.empty()) req.caller += ":" + claims->sub;
    if (limits)
      if (auto refused = over_limit(*limits, req.caller, true)) return refused;
    switch (claims->role) {
      case Role::admin: return std::nullopt;
      case Role::operator_:
        if (access.operator_may) return std::nullopt;
        return forbidden(req, Role::operator_);
      case Role::customer: return check_customer(ctx, req, access, *claims);
    }
    return forbidden(req, claims->role);
  });
}

void limit_rates_by_address(http::Router& router, RateLimits limits) {
  router.add_guard([limits](Request& req, const http::Route& route) -> std::optional<Response> {
    if (access_of(req.method, route.pattern).open) return std::nullopt;
    return over_limit(limits, req.client_address, false);
  });
}

std::string actor_of(const Request& req, std::string_view fallback) {
  if (!req.caller.empty()) return req.caller;
  return std::string(req.header("X-Actor").value_or(fallback));
}

}  // namespace orderflow::api
