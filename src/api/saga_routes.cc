// The saga's admin routes (docs/api.md §7): sagas, dead letters, and the §5 invariants.
// They parse and map: the work is app/saga/saga_admin.h's.
#include <boost/asio/awaitable.hpp>
#include <boost/json.hpp>
#include <memory>

#include "api/access.h"
#include "api/api.h"
#include "api/errors.h"
#include "api/http/await.h"
#include "api/query_params.h"
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
                      {"order_id", r.order_id},
                      {"step", saga::to_string(r.step)},
                      {"attempts", r.attempts},
                      {"last_error", r.last_error},
                      {"at", format_rfc3339_ms(d.recorded_at_ms)},
                      {"retried_at", d.retried_at_ms ? json::value(format_rfc3339_ms(*d.retried_at_ms)) : nullptr}};
}

}  // namespace

void add_saga_routes(http::Router& router, saga::SagaAdmin& admin, app::InvariantChecks& invariants) {

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
  });

  router.add(Method::get, "/api/v1/admin/sagas/{order_id}", [&admin](Request& req) -> asio::awaitable<Response> {
    auto found = admin.find(ascii_lower(req.param("order_id")));
    if (!found) co_return error_for(found.error());
    co_return http::json_response(200, saga_json(*found));
  });

  router.add(Method::get, "/api/v1/admin/dead-letters", [&admin](Request&) -> asio::awaitable<Response> {
    auto letters = admin.dead_letters();
    if (!letters) co_return error_for(letters.error());
    json::array out;
    for (const auto& d : *letters) out.push_back(dead_letter_json(d));
    co_return http::json_response(200, json::object{{"dead_letters", std::move(out)}});
  });

  // Drives the saga again with fresh attempts: whatever compensation is left is retried
  // (the order stays cancelled). The saga sees the request in the log.
  router.add(Method::post, "/api/v1/admin/dead-letters/{id}/retry", [&admin](Request& req) -> asio::awaitable<Response> {
    saga::RetryDeadLetter retry{ascii_lower(req.param("id")), actor_of(req, "admin")};
    auto r = co_await http::await_callback<Result<saga::DeadLetterRetryAccepted>>(
        [&](auto done) { admin.retry(retry, std::move(done)); });
    if (!r) co_return error_for(r.error());
    co_return http::json_response(
        202, json::object{{"dead_letter_id", r->dead_letter_id}, {"order_id", r->order_id}, {"position", r->position.value()}});
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
