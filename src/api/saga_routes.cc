// The saga's admin routes (docs/api.md §7): sagas, dead letters, and the §5 invariants.
#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>

#include "api/access.h"
#include "api/api.h"
#include "api/errors.h"
#include "api/http/await.h"
#include "api/query_params.h"
#include "app/invariants.h"
#include "app/saga/saga_runner.h"
#include "core/text.h"
#include "core/time.h"
#include "core/uuid.h"

namespace orderflow::api {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace saga = app::saga;
using http::Method;
using http::Request;
using http::Response;

json::value time_or_null(std::int64_t ms) { return ms > 0 ? json::value(format_rfc3339_ms(ms)) : json::value(nullptr); }

json::object saga_json(const saga::SagaView& v) {
  json::array steps;
  for (const auto& s : v.steps)
    steps.push_back(json::object{{"name", s.name},
                                 {"status", s.status},
                                 {"attempts", s.attempts},
                                 {"last_error", s.last_error.empty() ? json::value(nullptr) : json::value(s.last_error)},
                                 {"at", time_or_null(s.at_ms)}});
  json::object o{{"order_id", v.order_id}, {"state", saga::to_string(v.state)}, {"steps", std::move(steps)},
                 {"deadline", time_or_null(v.deadline_ms)}};
  if (!v.reason.empty()) o["reason"] = v.reason;
  return o;
}

// A saga this process no longer holds in memory: its last SagaEnded record.
Result<std::optional<saga::SagaView>> recorded_saga(es::EventStore& store, const std::string& order_id) {
  auto events = store.read_stream(saga::saga_stream(order_id), -1, 50, es::Direction::backward);
  if (!events) return fail(events.error());
  for (const auto& e : *events) {
    if (e.type != "SagaEnded") continue;
    boost::system::error_code ec;
    auto v = json::parse(e.data, ec);
    if (ec || !v.is_object()) return fail(Errc::corrupt, "saga-" + order_id + " holds an unreadable SagaEnded");
    const auto& o = v.as_object();
    saga::SagaView view{order_id, saga::parse_saga_state(json::value_to<std::string>(o.at("state")))
                                      .value_or(saga::SagaState::failed),
                        json::value_to<std::string>(o.at("reason")), {}, 0};
    for (const auto& s : o.at("steps").as_array()) {
      const auto& so = s.as_object();
      view.steps.push_back({json::value_to<std::string>(so.at("name")), json::value_to<std::string>(so.at("status")),
                            static_cast<int>(so.at("attempts").to_number<std::int64_t>()),
                            json::value_to<std::string>(so.at("last_error")), so.at("at_ms").to_number<std::int64_t>()});
    }
    return std::optional(std::move(view));
  }
  return std::optional<saga::SagaView>();
}

struct DeadLetter {
  std::string id, order_id;
  json::object record;  // as recorded, plus retried_at once retried
};

// Every dead letter, oldest first, folded from their stream.
Result<std::vector<DeadLetter>> dead_letters(es::EventStore& store) {
  std::vector<DeadLetter> out;
  for (es::StreamVersion from = 0;;) {
    auto page = store.read_stream(saga::kDeadLetterStream, from, 1000, es::Direction::forward);
    if (!page) return fail(page.error());
    for (const auto& e : *page) {
      boost::system::error_code ec;
      auto v = json::parse(e.data, ec);
      if (ec || !v.is_object()) continue;
      auto& o = v.as_object();
      auto id = json::value_to<std::string>(o.at("dead_letter_id"));
      if (e.type == "DeadLetterRecorded") {
        json::object r{{"dead_letter_id", id},          {"order_id", o.at("order_id")}, {"step", o.at("step")},
                       {"attempts", o.at("attempts")},  {"last_error", o.at("last_error")},
                       {"at", format_rfc3339_ms(e.recorded_at_ms)}, {"retried_at", nullptr}};
        out.push_back({id, json::value_to<std::string>(o.at("order_id")), std::move(r)});
      } else if (e.type == "DeadLetterRetried") {
        for (auto& d : out)
          if (d.id == id) d.record["retried_at"] = format_rfc3339_ms(e.recorded_at_ms);
      }
    }
    if (page->size() < 1000) return out;
    from = page->back().version + 1;
  }
}

}  // namespace

void add_saga_routes(http::Router& router, ApiContext& ctx, app::saga::SagaRunner* runner) {
  router.add(Method::get, "/api/v1/admin/sagas", [runner](Request& req) -> asio::awaitable<Response> {
    auto limit = int_param(req, "limit", 20, 1, 100);
    if (!limit) co_return error_for(limit.error());
    std::optional<saga::SagaState> state;
    if (auto s = req.query_param("state"); s && !s->empty()) {
      state = saga::parse_saga_state(*s);
      if (!state)
        co_return error_for(make_error(Errc::invalid_argument,
                                       "state must be RUNNING, COMPENSATING, COMPLETED, COMPENSATED or FAILED"));
    }
    json::array sagas;
    if (runner)
      for (const auto& v : runner->list(state, static_cast<std::size_t>(*limit))) sagas.push_back(saga_json(v));
    co_return http::json_response(200, json::object{{"sagas", std::move(sagas)}});
  });

  router.add(Method::get, "/api/v1/admin/sagas/{order_id}", [&ctx, runner](Request& req) -> asio::awaitable<Response> {
    auto id = ascii_lower(req.param("order_id"));
    if (runner)
      if (auto v = runner->view(id)) co_return http::json_response(200, saga_json(*v));
    auto recorded = recorded_saga(ctx.store, id);
    if (!recorded) co_return error_for(recorded.error());
    if (!*recorded) co_return error_for(make_error(Errc::not_found, "no saga for order " + id));
    co_return http::json_response(200, saga_json(**recorded));
  });

  router.add(Method::get, "/api/v1/admin/dead-letters", [&ctx](Request&) -> asio::awaitable<Response> {
    auto letters = dead_letters(ctx.store);
    if (!letters) co_return error_for(letters.error());
    json::array out;
    for (auto& d : *letters) out.push_back(std::move(d.record));
    co_return http::json_response(200, json::object{{"dead_letters", std::move(out)}});
  });

  // Drives the saga again with fresh attempts: whatever compensation is left is retried
  // (the order stays cancelled). The saga sees the request in the log.
  router.add(
      Method::post, "/api/v1/admin/dead-letters/{id}/retry",
      [&ctx](Request& req) -> asio::awaitable<Response> {
        auto id = ascii_lower(req.param("id"));
        auto letters = dead_letters(ctx.store);
        if (!letters) co_return error_for(letters.error());
        auto it = std::find_if(letters->begin(), letters->end(),
                               [&](const DeadLetter& d) { return d.id == id; });
        if (it == letters->end()) co_return error_for(make_error(Errc::not_found, "no dead letter " + id));
        es::AppendRequest append;
        append.stream_id = saga::kDeadLetterStream;
        json::object data{{"dead_letter_id", id}, {"order_id", it->order_id}};
        json::object meta{{"correlation_id", it->order_id},
                          {"actor", actor_of(req, "admin")}};
        append.events.push_back({uuid_v7(), "DeadLetterRetried", 1, json::serialize(data), json::serialize(meta)});
        auto r = co_await http::await_callback<Result<es::AppendResult>>(
            [&](auto done) { ctx.store.append_async(std::move(append), std::move(done)); });
        if (!r) co_return error_for(r.error());
        co_return http::json_response(
            202, json::object{{"dead_letter_id", id}, {"order_id", it->order_id}, {"position", r->position}});
      });

  router.add(Method::get, "/api/v1/admin/invariants", [&ctx](Request&) -> asio::awaitable<Response> {
    json::array violations;
    for (auto& v : app::check_invariants(ctx.store)) violations.push_back(json::value(std::move(v)));
    co_return http::json_response(200, json::object{{"violations", std::move(violations)}});
  });
}

}  // namespace orderflow::api
