// The saga's admin routes (docs/api.md §7): sagas, dead letters (the saga's and a bus-fed
// projector's), and the §5 invariants. They parse and map: the work is
// app/saga/saga_admin.h's and app/dead_letters.h's.
#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>
#include <memory>

#include "api/access.h"
#include "api/api.h"
#include "api/errors.h"
#include "api/http/await.h"
#include "api/query_params.h"
#include "app/dead_letters.h"
#include "app/invariants.h"
#include "app/saga/saga_admin.h"
#include "core/text.h"
#include "core/time.h"

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
    steps.push_back(json::object{{"name", saga::to_string(s.name)},
                                 {"status", saga::to_string(s.status)},
                                 {"attempts", s.attempts},
                                 {"last_error", s.last_error.empty() ? json::value(nullptr) : json::value(s.last_error)},
                                 {"at", time_or_null(s.at_ms)}});
  json::object o{{"order_id", v.order_id}, {"state", saga::to_string(v.state)}, {"steps", std::move(steps)},
                 {"deadline", time_or_null(v.deadline_ms)}};
  if (!v.reason.empty()) o["reason"] = v.reason;
  return o;
}

json::object dead_letter_json(const saga::DeadLetter& d) {
  const auto& r = d.recorded;
  return json::object{{"dead_letter_id", r.dead_letter_id},
                      {"source", "saga"},
                      {"order_id", r.order_id},
                      {"step", saga::to_string(r.step)},
                      {"attempts", r.attempts},
                      {"last_error", r.last_error},
                      {"at", format_rfc3339_ms(d.recorded_at_ms)},
                      {"retried_at", d.retried_at_ms ? json::value(format_rfc3339_ms(*d.retried_at_ms)) : nullptr}};
}

json::value text_or_null(std::string_view s) { return s.empty() ? json::value(nullptr) : json::value(s); }

// A bus consumer's dead letter: a bus-fed projector's, the event its stream is (or was) held
// behind; a bus-fed saga's, a message it could not decode (what its headers named of it).
json::object dead_letter_json(const app::bus_projector::BusDeadLetter& d) {
  return json::object{{"dead_letter_id", d.dead_letter_id},
                      {"source", "bus"},
                      {"consumer", d.consumer},
                      {"stream_id", text_or_null(d.stream_id.view())},
                      {"version", d.version.value() >= 0 ? json::value(d.version.value()) : nullptr},
                      {"event_id", text_or_null(d.event_id)},
                      {"position", d.position ? json::value(d.position->value()) : nullptr},
                      {"subject", d.subject},
                      {"reason", d.reason},
                      {"at", format_rfc3339_ms(d.at_ms)},
                      {"retried_at", d.retried_at_ms ? json::value(format_rfc3339_ms(*d.retried_at_ms)) : nullptr}};
}

json::object retried_json(const saga::DeadLetterRetryAccepted& r) {
  return json::object{{"dead_letter_id", r.dead_letter_id},
                      {"source", "saga"},
                      {"order_id", r.order_id},
                      {"position", r.position.value()}};
}

json::object retried_json(const app::bus_projector::Redriven& r) {
  return json::object{{"dead_letter_id", r.dead_letter_id},
                      {"source", "bus"},
                      {"consumer", r.consumer},
                      {"stream_id", text_or_null(r.stream_id.view())},
                      {"version", r.version ? json::value(r.version->value()) : nullptr},
                      {"position", r.position ? json::value(r.position->value()) : nullptr},
                      {"events", r.events},
                      {"retried_at", format_rfc3339_ms(r.retried_at_ms)}};
}

}  // namespace

void add_saga_routes(http::Router& router, saga::SagaAdmin& admin, app::DeadLetterAdmin& dead_letters,
                     app::InvariantChecks& invariants) {
  router.add(Method::get, "/api/v1/admin/sagas", [&admin](Request& req) -> asio::awaitable<Response> {
    auto limit = int_param(req, "limit", 20, 1, 100);
    if (!limit) co_return error_for(limit.error());
    saga::ListSagas list{std::nullopt, static_cast<std::size_t>(*limit)};
    if (auto s = req.query_param("state"); s && !s->empty()) {
      list.state = saga::parse_saga_state(*s);
      if (!list.state)
        co_return error_for(make_error(Errc::invalid_argument,
                                       "state must be RUNNING, COMPENSATING, COMPLETED, COMPENSATED or FAILED"));
    }
    json::array sagas;
    for (const auto& v : admin.list(list)) sagas.push_back(saga_json(v));
    co_return http::json_response(200, json::object{{"sagas", std::move(sagas)}});
  }, {.blocking = true});

  router.add(Method::get, "/api/v1/admin/sagas/{order_id}", [&admin](Request& req) -> asio::awaitable<Response> {
    auto found = admin.find(ascii_lower(req.param("order_id")));
    if (!found) co_return error_for(found.error());
    co_return http::json_response(200, saga_json(*found));
  });

  router.add(Method::get, "/api/v1/admin/dead-letters", [&dead_letters](Request&) -> asio::awaitable<Response> {
    auto letters = dead_letters.list();
    if (!letters) co_return error_for(letters.error());
    json::array out;
    for (const auto& d : *letters) out.push_back(std::visit([](const auto& v) { return dead_letter_json(v); }, d));
    co_return http::json_response(200, json::object{{"dead_letters", std::move(out)}});
  }, {.blocking = true});

  // The saga's: drives the saga again with fresh attempts (whatever compensation is left;
  // the order stays cancelled), which it sees in the log: 202. The bus's: its held stream
  // re-driven from the store and released before the answer: 200.
  router.add(Method::post, "/api/v1/admin/dead-letters/{id}/retry",
             [&dead_letters](Request& req) -> asio::awaitable<Response> {
               saga::RetryDeadLetter retry{ascii_lower(req.param("id")), actor_of(req, "admin")};
               auto r = co_await http::await_callback<Result<app::AnyRetry>>(
                   [&](auto done) { dead_letters.retry(retry, std::move(done)); });
               if (!r) co_return error_for(r.error());
               const bool accepted = std::holds_alternative<saga::DeadLetterRetryAccepted>(*r);
               co_return http::json_response(accepted ? 202 : 200,
                                             std::visit([](const auto& v) { return retried_json(v); }, *r));
             });

  // The fold of the whole log runs on the checks' own thread, never on an io thread; a store
  // that cannot be read is its error (503 unavailable, 500 corrupt), not a violation.
  router.add(Method::get, "/api/v1/admin/invariants", [&invariants](Request&) -> asio::awaitable<Response> {
    auto checked = co_await http::await_callback<Result<std::vector<std::string>>>(
        [&](auto done) { invariants.check(std::move(done)); });
    if (!checked) co_return error_for(checked.error());
    json::array violations;
    for (const auto& v : *checked) violations.emplace_back(v);
    co_return http::json_response(200, json::object{{"violations", std::move(violations)}});
  });
}

}  // namespace orderflow::api
