// Who may call which route (docs/api.md §3 "Authentication"): one table, and the router
// guard that enforces it with bearer tokens (api/token.h).
#pragma once

#include <string>
#include <string_view>

#include "api/api.h"
#include "api/http/rate_limiter.h"
#include "api/token.h"

namespace orderflow::api {

// What a customer's token may do on a route.
enum class CustomerAccess {
  none,       // nothing: 403
  any,        // call it (the catalogue)
  path_id,    // when the path's {id} is its own customer_id (its account, its orders); else 404
  own_order,  // when the order {id} was placed by it; else 404 (as if there were no such order)
  // when the customer the request names in Access::field (of the query for a GET, of the
  // body otherwise) is itself, or it names none (then its own data is meant, see
  // Request::confined_to); naming another is 403
  names_self,
};

// An admin may call every route; `open` routes need no token at all.
struct Access {
  bool open = false;
  bool operator_may = false;
  CustomerAccess customer = CustomerAccess::none;
  std::string_view field;  // for CustomerAccess::names_self
};

// The rule of a route pattern as the router registered it. A route missing from the table
// is for admins only.
Access access_of(http::Method method, std::string_view pattern);

// Rate limits per caller (serve --rate-limit): a request over its caller's limit is answered
// 429 `rate_limited` with Retry-After (whole seconds until it may send again). Open routes
// (health, readiness, metrics) are never limited. `metrics` may be null; both must outlive
// the router.
struct RateLimits {
  http::RateLimiter& limiter;
  Metrics* metrics = nullptr;
};

// Installs the guard on `router`: a route that is not open needs `Authorization: Bearer
// <token>` verified with `keys` (else 401 `unauthorized` with `WWW-Authenticate: Bearer`),
// then, with `limits`, to be within the token's rate limit (its role and sub are the caller),
// and a role the route's Access admits (else 403 `forbidden`, or 404 for another customer's
// resource). `keys`, `ctx` and `limits` must outlive the router.
void require_tokens(http::Router& router, ApiContext& ctx, const KeyRing& keys,
                    std::optional<RateLimits> limits = std::nullopt);

// Without tokens: installs a guard limiting each client address (Request::client_address).
void limit_rates_by_address(http::Router& router, RateLimits limits);

// The actor recorded in the events a request writes (docs/api.md §8): with authentication the
// token's role and sub ("customer:c-17"; X-Actor is not believed), else X-Actor or `fallback`.
std::string actor_of(const http::Request& req, std::string_view fallback);

}  // namespace orderflow::api
