// The read side (API.md §6) and the event listings (§6–§7). Entities are folded from
// the event store until the projections of the read-side issue serve them.
#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>
#include <charconv>

#include "api/api.h"
#include "api/errors.h"
#include "api/json_body.h"
#include "core/text.h"
#include "core/time.h"

namespace orderflow::api {

namespace {

namespace asio = boost::asio;
using http::Method;
using http::Request;
using http::Response;
namespace json = boost::json;


// An integer query parameter within [min, max]; absent: `fallback`.
Result<std::int64_t> int_param(const Request& req, std::string_view name, std::int64_t fallback, std::int64_t min,
                               std::int64_t max) {
  auto v = req.query_param(name);
  if (!v) return fallback;
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n < min || n > max)
    return fail(Errc::invalid_argument,
                std::string(name) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
  return n;
}

Response with_etag(Response r, es::StreamVersion version) {
  r.set_header("ETag", "\"" + std::to_string(version) + "\"");
  return r;
}

json::object order_json(const domain::order::State& s, es::StreamVersion version) {
  json::array items;
  for (const auto& l : s.items)
    items.push_back(json::object{{"product_id", l.product_id},
                                 {"quantity", l.quantity},
                                 {"unit_price_cents", l.unit_price_cents},
                                 {"line_total_cents", l.line_total_cents}});
  json::object o{{"order_id", s.order_id},
                 {"customer_id", s.customer_id},
                 {"items", std::move(items)},
                 {"total_cents", s.total_cents},
                 {"status", to_string(s.status)},
                 {"payment_status", to_string(s.payment_status)},
                 {"shipping_status", to_string(s.shipping_status)}};
  if (s.cancellation_reason) o["cancellation_reason"] = *s.cancellation_reason;
  if (s.shipping_address) o["shipping_address"] = *s.shipping_address;
  o["created_at"] = format_rfc3339_ms(s.created_at_ms);
  o["updated_at"] = format_rfc3339_ms(s.updated_at_ms);
  o["version"] = version;
  return o;
}

// One event as API.md §8 shows it. data and metadata are stored JSON, copied as they are.
void append_event_json(std::string& out, const es::RecordedEvent& e) {
  out += "{\"event_id\":" + quoted(e.event_id) + ",\"stream_id\":" + quoted(e.stream_id) +
         ",\"type\":" + quoted(e.type) + ",\"version\":" + std::to_string(e.version) +
         ",\"position\":" + std::to_string(e.position) + ",\"schema_version\":" + std::to_string(e.schema_version) +
         ",\"data\":" + e.data + ",\"metadata\":" + e.metadata + ",\"recorded_at\":\"" +
         format_rfc3339_ms(e.recorded_at_ms) + "\"}";
}

Response events_answer(const std::vector<es::RecordedEvent>& events, std::int64_t next_from) {
  std::string body = "{\"events\":[";
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i) body += ',';
    append_event_json(body, events[i]);
  }
  body += "],\"next_from\":" + std::to_string(next_from) + "}";
  return http::json_response(200, std::move(body));
}

// A stream's events from ?from_version (default 0), at most ?limit (1-1000, default 100).
Response stream_events(ApiContext& ctx, const Request& req, const std::string& stream, bool missing_is_404) {
  auto from = int_param(req, "from_version", 0, 0, INT64_MAX);
  if (!from) return error_for(from.error());
  auto limit = int_param(req, "limit", 100, 1, 1000);
  if (!limit) return error_for(limit.error());
  auto events = ctx.store.read_stream(stream, *from, static_cast<std::size_t>(*limit), es::Direction::forward);
  if (!events) return error_for(events.error());
  if (events->empty() && missing_is_404) {
    auto version = ctx.store.stream_version(stream);
    if (!version) return error_for(version.error());
    if (*version == es::kNoStream) return error_for(make_error(Errc::not_found, "no stream " + stream));
  }
  return events_answer(*events, events->empty() ? *from : events->back().version + 1);
}

template <class A, class Render>
Response entity(ApiContext& ctx, const std::string& id, const char* what, Render render) {
  auto loaded = ctx.commands.load<A>(id);
  if (!loaded) return error_for(loaded.error());
  if (!loaded->state.exists) return error_for(make_error(Errc::not_found, std::string("no ") + what + " " + id));
  return with_etag(http::json_response(200, json::serialize(render(loaded->state, loaded->version))),
                   loaded->version);
}

}  // namespace

void add_query_routes(http::Router& router, ApiContext& ctx) {
  router.add(Method::get, "/api/v1/orders/{id}", [&ctx](Request& req) -> asio::awaitable<Response> {
    auto id = ascii_lower(req.param("id"));
    if (req.query_param("version")) {
      auto version = int_param(req, "version", 0, 0, INT64_MAX);
      if (!version) co_return error_for(version.error());
      auto loaded = ctx.commands.load_until<app::Order>(id, *version);
      if (!loaded) co_return error_for(loaded.error());
      if (!loaded->state.exists || loaded->version < *version)
        co_return error_for(make_error(Errc::not_found, "order " + id + " has no version " + std::to_string(*version)));
      co_return with_etag(http::json_response(200, json::serialize(order_json(loaded->state, loaded->version))),
                          loaded->version);
    }
    co_return entity<app::Order>(ctx, id, "order", order_json);
  });

  router.add(Method::get, "/api/v1/products/{id}", [&ctx](Request& req) -> asio::awaitable<Response> {
    co_return entity<app::Product>(ctx, std::string(req.param("id")), "product",
                                   [](const domain::product::State& s, es::StreamVersion v) {
                                     return json::object{{"product_id", s.product_id},
                                                         {"name", s.name},
                                                         {"unit_price_cents", s.unit_price_cents},
                                                         {"on_hand", s.on_hand},
                                                         {"reserved", s.reserved},
                                                         {"available", s.available()},
                                                         {"version", v}};
                                   });
  });

  router.add(Method::get, "/api/v1/accounts/{id}", [&ctx](Request& req) -> asio::awaitable<Response> {
    co_return entity<app::Account>(ctx, std::string(req.param("id")), "account",
                                   [](const domain::account::State& s, es::StreamVersion v) {
                                     return json::object{{"account_id", s.account_id},
                                                         {"owner", s.owner},
                                                         {"balance_cents", s.balance_cents},
                                                         {"version", v}};
                                   });
  });
}

void add_event_routes(http::Router& router, ApiContext& ctx) {
  router.add(Method::get, "/api/v1/orders/{id}/events", [&ctx](Request& req) -> asio::awaitable<Response> {
    co_return stream_events(ctx, req, "order-" + ascii_lower(req.param("id")), true);
  });

  router.add(Method::get, "/api/v1/admin/streams/{stream_id}/events", [&ctx](Request& req) -> asio::awaitable<Response> {
    co_return stream_events(ctx, req, std::string(req.param("stream_id")), false);
  });

  router.add(Method::get, "/api/v1/admin/events", [&ctx](Request& req) -> asio::awaitable<Response> {
    auto from = int_param(req, "from_position", 1, 0, INT64_MAX);
    if (!from) co_return error_for(from.error());
    auto limit = int_param(req, "limit", 100, 1, 1000);
    if (!limit) co_return error_for(limit.error());
    es::EventFilter filter;
    if (auto c = req.query_param("category"); c && !c->empty()) filter.categories.emplace_back(*c);
    if (auto t = req.query_param("type"); t && !t->empty()) filter.types.emplace_back(*t);
    std::vector<es::RecordedEvent> events;
    auto next = ctx.store.scan_all(std::max<std::int64_t>(*from, 1), static_cast<std::size_t>(*limit), filter,
                                   [&](const es::RecordedEvent& e) { events.push_back(e); });
    if (!next) co_return error_for(next.error());
    co_return events_answer(events, *next);
  });

  router.add(Method::get, "/healthz", [](Request&) -> asio::awaitable<Response> {
    co_return http::json_response(200, R"({"status":"ok"})");
  });
}

http::Router make_router(ApiContext& ctx) {
  http::Router router;
  add_command_routes(router, ctx);
  add_query_routes(router, ctx);
  add_event_routes(router, ctx);
  return router;
}

}  // namespace orderflow::api
