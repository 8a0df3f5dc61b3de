// The bus relay's state (docs/api.md §7): GET /api/v1/admin/relay.
#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include "api/api.h"
#include "api/errors.h"
#include "app/relay/relay.h"
#include "core/time.h"

namespace orderflow::api {

using http::Method;

std::optional<RelayView> relay_view(ApiContext& ctx) {
  if (!ctx.relay) return std::nullopt;
  auto s = ctx.relay->status();
  RelayView v{.bus = s.bus, .state = s.state, .position = s.position, .published = s.published,
              .last_error = s.last_error};
  if (auto last = ctx.events.last_position(); last && *last > s.position) {
    v.lag = *last - s.position;
    v.lag_seconds = ctx.events.age_seconds(s.position + 1, now_unix_ms());
  }
  return v;
}

void add_relay_routes(http::Router& router, ApiContext& ctx) {
  router.add(Method::get, "/api/v1/admin/relay", [&ctx](http::Request&) -> boost::asio::awaitable<http::Response> {
    auto v = relay_view(ctx);
    if (!v) co_return error_for(make_error(Errc::not_found, "this process relays the log to no bus (serve --bus)"));
    boost::json::object o{{"bus", v->bus},           {"state", v->state},
                          {"position", v->position.value()}, {"lag", v->lag},
                          {"lag_seconds", v->lag_seconds}, {"published", v->published}};
    o["last_error"] = v->last_error ? boost::json::value(*v->last_error) : boost::json::value(nullptr);
    co_return http::json_response(200, o);
  });
}

}  // namespace orderflow::api
