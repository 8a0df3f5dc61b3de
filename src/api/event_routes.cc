// The event listings (docs/api.md §6–§7): read from the event store itself, never behind.
#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <optional>

#include "api/api.h"
#include "api/errors.h"
#include "api/json_body.h"
#include "api/query_params.h"
#include "codec/event_json.h"
#include "core/text.h"

namespace orderflow::api {

namespace {

namespace asio = boost::asio;
using http::Method;
using http::Request;
using http::Response;

// One page of events as docs/api.md §6 shows it, rendered as they come. Its body stops
// growing past kPageBytes (a page holds at least one event): what is left out comes with the
// next page, so a listing never builds a body of `limit` times the largest event.
class EventPage {
 public:
  static constexpr std::size_t kPageBytes = 1 << 20;

  // False, leaving `e` out, once the page is full.
  bool add(const es::RecordedEvent& e) {
    if (count_ > 0 && body_.size() >= kPageBytes) return false;
    if (count_++ > 0) body_ += ',';
    codec::append_event_json(body_, e);
    return true;
  }

  Response answer(std::int64_t next_from) {
    body_ += "],\"next_from\":" + std::to_string(next_from) + "}";
    return http::json_response(200, std::move(body_));
  }

 private:
  std::string body_ = "{\"events\":[";
  std::size_t count_ = 0;
};

// A stream's events from ?from_version (default 0), at most ?limit (1-1000, default 100).
Response stream_events(ApiContext& ctx, const Request& req, const es::StreamId& stream, bool missing_is_404) {
  auto from = int_param(req, "from_version", 0, 0, INT64_MAX);
  if (!from) return error_for(from.error());
  auto limit = int_param(req, "limit", 100, 1, 1000);
  if (!limit) return error_for(limit.error());
  auto events = ctx.events.stream(stream, es::StreamVersion{*from}, static_cast<std::size_t>(*limit), missing_is_404);
  if (!events) return error_for(events.error());
  EventPage page;
  for (const auto& e : *events)
    if (!page.add(e)) return revealed(ctx, page.answer(e.version.value()));
  return revealed(ctx, page.answer(events->empty() ? *from : (events->back().version + 1).value()));
}

}  // namespace

void add_event_routes(http::Router& router, ApiContext& ctx) {
  router.add(Method::get, "/api/v1/orders/{id}/events", [&ctx](Request& req) -> asio::awaitable<Response> {
    co_return stream_events(ctx, req, es::StreamId("order-" + ascii_lower(req.param("id"))), true);
  }, {.blocking = true});

  router.add(Method::get, "/api/v1/admin/streams/{stream_id}/events", [&ctx](Request& req) -> asio::awaitable<Response> {
    co_return stream_events(ctx, req, es::StreamId(req.param("stream_id")), false);
  }, {.blocking = true});

  router.add(Method::get, "/api/v1/admin/events", [&ctx](Request& req) -> asio::awaitable<Response> {
    auto from = int_param(req, "from_position", 1, 0, INT64_MAX);
    if (!from) co_return error_for(from.error());
    auto limit = int_param(req, "limit", 100, 1, 1000);
    if (!limit) co_return error_for(limit.error());
    es::EventFilter filter;
    if (auto c = req.query_param("category"); c && !c->empty()) filter.categories.emplace_back(*c);
    if (auto t = req.query_param("type"); t && !t->empty()) filter.types.emplace_back(*t);
    EventPage page;
    auto next = ctx.events.page(es::Position{*from}, static_cast<std::size_t>(*limit), filter,
                                [&](const es::RecordedEvent& e) { return page.add(e); });
    if (!next) co_return error_for(next.error());
    co_return revealed(ctx, page.answer(next->value()));
  }, {.blocking = true});

  router.add(Method::get, "/healthz", [](Request&) -> asio::awaitable<Response> {
    co_return http::json_response(200, R"({"status":"ok"})");
  });
}

http::Router make_router(ApiContext& ctx) {
  http::Router router;
  add_command_routes(router, ctx);
  add_event_routes(router, ctx);
  add_docs_routes(router);
  if (ctx.read) {
    add_query_routes(router, ctx);
    add_stream_routes(router, ctx);
  }
  add_relay_routes(router, ctx);
  add_personal_data_routes(router, ctx);
  return router;
}

}  // namespace orderflow::api
