// The read side (docs/api.md §6) served from projections, the projections' admin routes (§7),
// /readyz and /metrics.
//
// Consistency: a query answers once its projection has applied `min_position` or, without
// it, the store's last position when the query arrived (so a client always reads its own
// acknowledged writes); it waits up to `wait_ms` without holding an io thread, else 503
// projection_lagging. In a process whose projections are fed from the bus, what a query
// waits for is the bus projector's rule (app/bus_projector/bus_projector.h, ReadTarget).
// Time travel and `consistency=strong` fold the event store instead.
#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include "api/api.h"
#include "api/errors.h"
#include "api/http/await.h"
#include "api/json_body.h"
#include "api/metrics.h"
#include "api/query_params.h"
#include "app/aggregates.h"
#include "app/bus_projector/bus_projector.h"
#include "app/projections/documents.h"
#include "app/projections/history.h"
#include "app/projections/read_side.h"
#include "app/saga/saga_runner.h"
#include "codec/event_json.h"
#include "core/text.h"
#include "core/time.h"

namespace orderflow::api {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using app::projections::Document;
using app::projections::Page;
using http::Method;
using http::Request;
using http::Response;

constexpr std::int64_t kMaxWaitMs = 10000;

// caught_up in a process fed from the bus: what the bus projector says the read waits for.
asio::awaitable<std::optional<Response>> bus_caught_up(ApiContext& ctx, const std::string& projection,
                                                       std::optional<es::StreamId> entity, std::int64_t min,
                                                       std::int64_t wait_ms) {
  app::bus_projector::ReadTarget target{projection, std::move(entity),
                                        min < 0 ? std::nullopt : std::optional(es::Position{min})};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  const auto stand = co_await http::await_callback<Result<app::bus_projector::ReadStand>>([&](auto done) {
    ctx.bus_projector->when_readable(target, deadline, std::move(done));
  });
  if (!stand) co_return error_for(stand.error());
  if (stand->applied) co_return std::nullopt;
  json::object details{{"projection", projection},
                       {"position", stand->position.value()},
                       {"min_position", min < 0 ? json::value(nullptr) : json::value(min)}};
  std::string message = "projection " + projection + " has not applied ";
  if (target.stream) {
    details["stream_id"] = target.stream->str();
    details["version"] = stand->version.value();
    details["applied_version"] = stand->applied_version.value();
    message += "version " + to_string(stand->version) + " of " + target.stream->str() + " within wait_ms";
  } else {
    message += "position " + std::to_string(min) + " within wait_ms";
  }
  co_return error_for(make_error(Errc::projection_lagging, message), std::move(details));
}

// nullopt once `projection` has applied what the query asks for; otherwise the answer to give
// (400 for a bad parameter, 503 projection_lagging). `entity`: the stream of the one entity
// the query reads, if it reads one.
asio::awaitable<std::optional<Response>> caught_up(ApiContext& ctx, const Request& req, const std::string& projection,
                                                   std::optional<es::StreamId> entity = std::nullopt) {
  auto min = int_param(req, "min_position", -1, 0, INT64_MAX);
  if (!min) co_return error_for(min.error());
  auto wait = int_param(req, "wait_ms", 2000, 0, kMaxWaitMs);
  if (!wait) co_return error_for(wait.error());
  if (ctx.bus_projector) co_return co_await bus_caught_up(ctx, projection, std::move(entity), *min, *wait);
  es::Position target{*min};
  if (target < 0) {
    auto last = ctx.events.last_position();
    if (!last) co_return error_for(last.error());
    target = *last;
  }
  auto& runner = ctx.read->runner();
  if (runner.position(projection) >= target) co_return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(*wait);
  const bool applied = co_await http::await_callback<bool>(
      [&](auto done) { runner.when_applied(projection, target, deadline, std::move(done)); });
  if (applied) co_return std::nullopt;
  co_return error_for(
      make_error(Errc::projection_lagging,
                 "projection " + projection + " has not applied position " + to_string(target) + " within wait_ms"),
      json::object{{"projection", projection},
                   {"position", runner.position(projection).value()},
                   {"min_position", target.value()}});
}

Response document_answer(const Result<std::optional<Document>>& doc, const std::string& what) {
  if (!doc) return error_for(doc.error());
  if (!*doc) return error_for(make_error(Errc::not_found, "no " + what));
  return with_etag(http::json_response(200, (*doc)->json), (*doc)->version);
}

Response page_answer(const Result<Page>& page, const char* field) {
  if (!page) return error_for(page.error());
  std::string body = std::string("{\"") + field + "\":[";
  for (std::size_t i = 0; i < page->documents.size(); ++i) {
    if (i) body += ',';
    body += page->documents[i];
  }
  body += "],\"next_cursor\":" + (page->next_cursor ? codec::json_string(*page->next_cursor) : std::string("null"));
  body += '}';
  return http::json_response(200, std::move(body));
}

std::optional<std::string> text_param(const Request& req, std::string_view name) {
  auto v = req.query_param(name);
  if (!v || v->empty()) return std::nullopt;
  return std::string(*v);
}

Result<int> limit_param(const Request& req) {
  OF_ASSIGN_OR_RETURN(auto limit, int_param(req, "limit", 20, 1, 100));
  return static_cast<int>(limit);
}

// GET /orders and /customers/{id}/orders.
asio::awaitable<Response> list_orders(ApiContext& ctx, const Request& req, std::optional<std::string> customer) {
  app::projections::OrderListQuery q;
  // A customer's token lists its own orders (api/access.h has refused naming another).
  q.customer_id = req.confined_to.empty() ? std::move(customer) : std::optional<std::string>(req.confined_to);
  q.status = text_param(req, "status");
  if (q.status && !domain::order::parse_order_status(*q.status))
    co_return error_for(make_error(Errc::invalid_argument,
                                   "status must be one of PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED"));
  auto limit = limit_param(req);
  if (!limit) co_return error_for(limit.error());
  q.limit = *limit;
  q.cursor = text_param(req, "cursor");
  if (auto lagging = co_await caught_up(ctx, req, "orders")) co_return std::move(*lagging);
  co_return revealed(ctx, page_answer(ctx.read->orders().list(q), "orders"));
}

// An RFC 3339 time or a date (YYYY-MM-DD, midnight UTC); absent: `fallback`.
Result<std::int64_t> time_param(const Request& req, std::string_view name, std::int64_t fallback) {
  auto v = req.query_param(name);
  if (!v) return fallback;
  auto ms = parse_rfc3339_ms(*v);
  if (!ms && v->size() == 10) ms = parse_rfc3339_ms(std::string(*v) + "T00:00:00Z");
  if (!ms) return fail(Errc::invalid_argument, std::string(name) + " must be an RFC 3339 time or a date YYYY-MM-DD");
  return *ms;
}

Response folded_answer(const domain::order::State& state, es::StreamVersion version) {
  return with_etag(http::json_response(200, app::projections::order_document(state, version)), version);
}

asio::awaitable<Response> get_order(ApiContext& ctx, Request& req) {
  const auto id = ascii_lower(req.param("id"));
  if (req.query_param("version")) {
    auto version = int_param(req, "version", 0, 0, INT64_MAX);
    if (!version) co_return error_for(version.error());
    auto loaded = ctx.commands.load_until<app::Order>(id, es::StreamVersion{*version});
    if (!loaded) co_return error_for(loaded.error());
    if (!loaded->state.exists || loaded->version < *version)
      co_return error_for(make_error(Errc::not_found, "order " + id + " has no version " + std::to_string(*version)));
    co_return revealed(ctx, folded_answer(loaded->state, loaded->version));
  }
  if (req.query_param("at")) {
    auto at = time_param(req, "at", 0);
    if (!at) co_return error_for(at.error());
    co_return revealed(ctx, document_answer(ctx.events.order_at_time(id, *at),
                                            "order " + id + " at that time"));
  }
  auto consistency = req.query_param("consistency").value_or("eventual");
  if (consistency == "strong") {
    auto loaded = ctx.commands.load<app::Order>(id);
    if (!loaded) co_return error_for(loaded.error());
    if (!loaded->state.exists) co_return error_for(make_error(Errc::not_found, "no order " + id));
    co_return revealed(ctx, folded_answer(loaded->state, loaded->version));
  }
  if (consistency != "eventual")
    co_return error_for(make_error(Errc::invalid_argument, "consistency must be strong or eventual"));
  if (auto lagging = co_await caught_up(ctx, req, "orders", app::stream_of<app::Order>(id)))
    co_return std::move(*lagging);
  co_return revealed(ctx, document_answer(ctx.read->orders().get(id), "order " + id));
}

json::value sales_json(const app::projections::Sales& s) {
  json::array days, top;
  for (const auto& d : s.by_day)
    days.push_back(json::object{{"date", d.date}, {"orders", d.orders}, {"revenue_cents", d.revenue_cents}});
  for (const auto& p : s.top_products)
    top.push_back(
        json::object{{"product_id", p.product_id}, {"quantity", p.quantity}, {"revenue_cents", p.revenue_cents}});
  return json::object{{"orders_placed", s.orders_placed},
                      {"orders_confirmed", s.orders_confirmed},
                      {"orders_cancelled", s.orders_cancelled},
                      {"revenue_cents", s.revenue_cents},
                      {"by_day", std::move(days)},
                      {"top_products", std::move(top)}};
}

// /api/v1/admin/projections in a process fed from the bus: the bus projector's read models.
Response bus_projections(ApiContext& ctx) {
  auto last = ctx.events.last_position();
  if (!last) return error_for(last.error());
  const auto s = ctx.bus_projector->status();
  json::array list;
  for (const auto& p : ctx.bus_projector->projections()) {
    json::object o{{"name", p.name},
                   {"position", p.position.value()},
                   {"lag", std::max<std::int64_t>(0, last->value() - std::max(p.position, s.position).value())},
                   {"status", s.state},
                   {"last_error", s.last_error ? json::value(*s.last_error) : json::value(nullptr)},
                   {"fed_by", "bus"},
                   {"backlog", s.backlog ? json::value(*s.backlog) : json::value(nullptr)}};
    const bool measured = s.lag_window > 0;
    o["lag_p50_ms"] = measured ? json::value(s.lag_p50_ms) : nullptr;
    o["lag_p99_ms"] = measured ? json::value(s.lag_p99_ms) : nullptr;
    o["lag_window"] = s.lag_window;
    list.push_back(std::move(o));
  }
  return http::json_response(200, list);
}

}  // namespace

std::optional<NotReady> not_ready(ApiContext& ctx) {
  if (auto failure = ctx.events.write_failure()) return NotReady{"the event store cannot write", failure->message};
  if (ctx.saga_bus)
    if (auto s = ctx.saga_bus->bus_status(); s && s->state != "consuming" && s->state != "standby")
      return NotReady{"the saga is not consuming from the bus (" + s->state + ")", s->last_error};
  if (ctx.bus_projector) {
    if (auto s = ctx.bus_projector->status(); s.state != "consuming")
      return NotReady{"the projector is not consuming from the bus (" + s.state + ")", s.last_error};
    return std::nullopt;
  }
  if (ctx.read)
    for (const auto& s : ctx.read->runner().status())
      if (s.position < ctx.ready_position) return NotReady{"projection " + s.name + " is catching up", std::nullopt};
  return std::nullopt;
}

namespace {

// What /readyz looked at (docs/api.md §7): the store, each projection, the saga lease.
json::object readiness_checks(ApiContext& ctx) {
  const auto failure = ctx.events.write_failure();
  json::object store{{"readable", true}, {"writable", !failure}};
  if (failure) store["error"] = failure->message;
  json::array projections;
  if (ctx.read && !ctx.bus_projector)
    for (const auto& s : ctx.read->runner().status())
      projections.push_back(json::object{{"name", s.name},
                                         {"state", es::to_string(s.state)},
                                         {"position", s.position.value()},
                                         {"lag", s.lag},
                                         {"caught_up", s.position >= ctx.ready_position}});
  json::object checks{{"store", std::move(store)}, {"projections", std::move(projections)}};
  // A standby (another process holds the lease) is ready: it serves, and takes over when asked.
  if (auto running = ctx.metrics ? ctx.metrics->saga_running() : std::nullopt)
    checks["saga"] = json::object{{"holds_lease", *running}};
  // Writes do not wait for the bus (the log is the outbox): a relay that cannot publish
  // leaves the process ready, and is told here.
  if (auto relay = relay_view(ctx))
    checks["relay"] = json::object{
        {"state", relay->state},
        {"error", relay->last_error ? json::value(*relay->last_error) : json::value(nullptr)}};
  if (auto b = ctx.saga_bus ? ctx.saga_bus->bus_status() : std::nullopt)
    checks["saga_bus"] = json::object{
        {"bus", b->bus},
        {"consumer", b->consumer},
        {"state", b->state},
        {"next_position", b->next.value()},
        {"buffered", b->buffered},
        // The gap it waits for: positions from next_position up to the first event held.
        {"gap_until", b->gap_until ? json::value(b->gap_until->value()) : json::value(nullptr)},
        {"gap_ms", b->gap_ms},
        {"folded", b->folded},
        {"from_store", b->from_store},
        {"dead_lettered", b->dead_lettered},
        {"error", b->last_error ? json::value(*b->last_error) : json::value(nullptr)}};
  if (ctx.bus_projector) {
    const auto s = ctx.bus_projector->status();
    checks["bus_projector"] = json::object{{"bus", s.bus},
                                           {"state", s.state},
                                           {"applied", s.applied},
                                           {"dead_lettered", s.dead_lettered},
                                           {"from_store", s.from_store},
                                           {"error", s.last_error ? json::value(*s.last_error) : json::value(nullptr)}};
  }
  return checks;
}

}  // namespace

void add_query_routes(http::Router& router, ApiContext& ctx) {
  router.add(Method::get, "/api/v1/orders/{id}", [&ctx](Request& req) { return get_order(ctx, req); });

  router.add(Method::get, "/api/v1/orders", [&ctx](Request& req) {
    return list_orders(ctx, req, text_param(req, "customer_id"));
  }, {.blocking = true});

  router.add(Method::get, "/api/v1/customers/{id}/orders", [&ctx](Request& req) {
    return list_orders(ctx, req, std::string(req.param("id")));
  }, {.blocking = true});

  router.add(Method::get, "/api/v1/products/{id}", [&ctx](Request& req) -> asio::awaitable<Response> {
    const std::string id(req.param("id"));
    if (auto lagging = co_await caught_up(ctx, req, "products", app::stream_of<app::Product>(id)))
      co_return std::move(*lagging);
    co_return document_answer(ctx.read->products().get(id), "product " + id);
  });

  router.add(Method::get, "/api/v1/products", [&ctx](Request& req) -> asio::awaitable<Response> {
    auto limit = limit_param(req);
    if (!limit) co_return error_for(limit.error());
    if (auto lagging = co_await caught_up(ctx, req, "products")) co_return std::move(*lagging);
    co_return page_answer(ctx.read->products().list(*limit, text_param(req, "cursor")), "products");
  }, {.blocking = true});

  router.add(Method::get, "/api/v1/accounts/{id}", [&ctx](Request& req) -> asio::awaitable<Response> {
    const std::string id(req.param("id"));
    if (auto lagging = co_await caught_up(ctx, req, "accounts", app::stream_of<app::Account>(id)))
      co_return std::move(*lagging);
    co_return revealed(ctx, document_answer(ctx.read->accounts().get(id), "account " + id));
  });

  // Oldest first, `limit` (1-1000, default 100) at a time; next_cursor continues.
  router.add(Method::get, "/api/v1/accounts/{id}/transactions", [&ctx](Request& req) -> asio::awaitable<Response> {
    const std::string id(req.param("id"));
    auto limit = int_param(req, "limit", 100, 1, 1000);
    if (!limit) co_return error_for(limit.error());
    auto after = int_param(req, "cursor", 0, 0, INT64_MAX);
    if (!after) co_return error_for(make_error(Errc::invalid_argument, "cursor is not one this server gave out"));
    if (auto lagging = co_await caught_up(ctx, req, "accounts", app::stream_of<app::Account>(id)))
      co_return std::move(*lagging);
    auto account = ctx.read->accounts().get(id);
    if (!account) co_return error_for(account.error());
    if (!*account) co_return error_for(make_error(Errc::not_found, "no account " + id));
    auto rows = ctx.read->accounts().transactions(id, static_cast<int>(*limit), es::Position{*after});
    if (!rows) co_return error_for(rows.error());
    json::array list;
    for (const auto& t : *rows) {
      json::object o{{"type", t.type}, {"amount_cents", t.amount_cents}};
      if (!t.order_id.empty()) o["order_id"] = t.order_id;
      o["at"] = format_rfc3339_ms(t.at_ms);
      o["position"] = t.position.value();
      list.push_back(std::move(o));
    }
    json::value next = nullptr;
    if (rows->size() == static_cast<std::size_t>(*limit)) next = to_string(rows->back().position);
    co_return http::json_response(200, json::object{{"transactions", std::move(list)}, {"next_cursor", next}});
  }, {.blocking = true});

  router.add(Method::get, "/api/v1/analytics/sales", [&ctx](Request& req) -> asio::awaitable<Response> {
    auto from = time_param(req, "from", INT64_MIN);
    if (!from) co_return error_for(from.error());
    auto to = time_param(req, "to", INT64_MAX);
    if (!to) co_return error_for(to.error());
    if (auto lagging = co_await caught_up(ctx, req, "sales")) co_return std::move(*lagging);
    auto sales = ctx.read->sales().sales(*from, *to);
    if (!sales) co_return error_for(sales.error());
    co_return http::json_response(200, json::serialize(sales_json(*sales)));
  }, {.blocking = true});

  router.add(Method::get, "/api/v1/admin/projections", [&ctx](Request&) -> asio::awaitable<Response> {
    if (ctx.bus_projector) co_return bus_projections(ctx);
    json::array list;
    const auto lags = ctx.read->runner().lags();
    for (const auto& s : ctx.read->runner().status()) {
      json::value error = nullptr;
      if (s.last_error) error = *s.last_error;
      json::object o{{"name", s.name},
                     {"position", s.position.value()},
                     {"lag", s.lag},
                     {"status", es::to_string(s.state)},
                     {"last_error", error},
                     {"fed_by", "log"}};
      // Milliseconds from an append to its event being in the live copy, over the last
      // lag_window events applied (null before the first).
      auto lag = std::find_if(lags.begin(), lags.end(), [&](const auto& l) { return l.name == s.name; });
      const bool measured = lag != lags.end() && lag->window > 0;
      o["lag_p50_ms"] = measured ? json::value(lag->p50_ms) : nullptr;
      o["lag_p99_ms"] = measured ? json::value(lag->p99_ms) : nullptr;
      o["lag_window"] = measured ? lag->window : 0;
      list.push_back(std::move(o));
    }
    co_return http::json_response(200, list);
  });

  router.add(Method::post, "/api/v1/admin/projections/{name}/rebuild", [&ctx](Request& req) -> asio::awaitable<Response> {
    const std::string name(req.param("name"));
    if (ctx.bus_projector) {
      const auto fed = ctx.bus_projector->projections();
      if (std::none_of(fed.begin(), fed.end(), [&](const auto& p) { return p.name == name; }))
        co_return error_for(make_error(Errc::not_found, "no projection " + name));
      co_return error_for(make_error(Errc::invalid_state,
                                     "projection " + name + " is fed from the bus in this process: it is not rebuilt"));
    }
    if (auto r = ctx.read->runner().rebuild(name); !r) co_return error_for(r.error());
    co_return http::json_response(202, json::object{{"name", name}, {"status", "rebuilding"}});
  });

  router.add(Method::get, "/readyz", [&ctx](Request&) -> asio::awaitable<Response> {
    if (auto last = ctx.events.last_position(); !last) co_return error_for(last.error());
    if (auto why = not_ready(ctx)) {
      json::object details{{"checks", readiness_checks(ctx)}};
      if (why->reason) details["reason"] = *why->reason;
      co_return error_for(make_error(Errc::unavailable, why->message), std::move(details));
    }
    co_return http::json_response(200, json::object{{"status", "ready"}, {"checks", readiness_checks(ctx)}});
  });

  if (ctx.metrics)
    router.add(Method::get, "/metrics", [&ctx](Request&) -> asio::awaitable<Response> {
      Response r;
      r.body = ctx.metrics->render(ctx);
      r.set_header("Content-Type", "text/plain; version=0.0.4");
      co_return r;
    });
}

}  // namespace orderflow::api
