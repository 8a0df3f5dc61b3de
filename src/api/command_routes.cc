// The write side (docs/api.md §4): every command endpoint, If-Match and Idempotency-Key.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <cctype>

#include "api/access.h"
#include "api/api.h"
#include "api/errors.h"
#include "api/http/await.h"
#include "api/json_body.h"
#include "api/metrics.h"
#include "app/command_service.h"
#include "app/place_order.h"
#include "codec/event_json.h"
#include "core/text.h"
#include "core/time.h"
#include "core/trace.h"

namespace orderflow::api {

namespace {

namespace asio = boost::asio;
using http::Method;
using http::Request;
using http::Response;

// The parts of an accepted write's answer besides version and position.
struct Answer {
  int status = 200;
  std::string id_field;  // "order_id"
  std::string id;
  std::string extra;  // more fields, e.g. R"(,"status":"PENDING")"
};

std::string render(const Answer& a, const es::AppendResult& r) {
  return "{" + codec::json_string(a.id_field) + ":" + codec::json_string(a.id) + a.extra +
         ",\"version\":" + to_string(r.version) + ",\"position\":" + to_string(r.position) + "}";
}

Response accepted(int status, std::string body, es::StreamVersion version) {
  auto r = http::json_response(status, std::move(body));
  r.set_header("ETag", "\"" + to_string(version) + "\"");
  return r;
}

Result<std::optional<es::StreamVersion>> parse_if_match(const Request& req) {
  auto h = req.header("If-Match");
  if (!h) return std::optional<es::StreamVersion>();
  std::string_view v = *h;
  // RFC 9110 §13.1.1: If-Match compares strongly, and a weak tag never matches.
  if (v.starts_with("W/"))
    return fail(Errc::invalid_argument, "If-Match takes a strong version like \"3\", not a weak W/ tag");
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  std::int64_t version = 0;
  if (v.empty() || v.size() > 18) return fail(Errc::invalid_argument, "If-Match must be a version like \"3\"");
  for (char c : v) {
    if (c < '0' || c > '9') return fail(Errc::invalid_argument, "If-Match must be a version like \"3\"");
    version = version * 10 + (c - '0');
  }
  return std::optional<es::StreamVersion>(es::StreamVersion{version});
}

Result<std::optional<std::string>> parse_idempotency_key(const Request& req) {
  auto h = req.header("Idempotency-Key");
  if (!h) return std::optional<std::string>();
  if (h->empty() || h->size() > 255)
    return fail(Errc::invalid_argument, "Idempotency-Key must be 1-255 printable characters");
  for (unsigned char c : *h)
    if (c < 0x20 || c > 0x7e) return fail(Errc::invalid_argument, "Idempotency-Key must be 1-255 printable characters");
  return std::optional<std::string>(std::string(*h));
}

// A command ready to run: parsed and validated in shape, not yet decided.
template <class A>
struct Prepared {
  boost::json::value body;  // as parsed, for the idempotency fingerprint
  std::string id;
  typename A::Command command;
  Answer answer;
  bool new_stream = false;  // the server made the id just now
};

// What every command route needs: the context, and the service that runs its commands.
struct Writes {
  ApiContext& ctx;
  std::shared_ptr<app::CommandService> service;
};

// Runs a prepared command with the request's If-Match, Idempotency-Key and correlation
// id (app::CommandService), and answers as docs/api.md §2 says. (Coroutine parameters are
// passed as named values: g++ 12 destroys a braced temporary bound to a coroutine's
// by-value parameter twice.)
template <class A>
asio::awaitable<Response> run(Writes w, Request& req, Prepared<A> p) {
  auto if_match = parse_if_match(req);
  if (!if_match) co_return error_for(if_match.error());
  auto key = parse_idempotency_key(req);
  if (!key) co_return error_for(key.error());

  app::CommandRequest<A> command{p.id, std::move(p.command), *if_match};
  if (*key)
    command.idempotency = app::idempotency_key(
        std::move(**key), std::string(http::method_name(req.method)) + " " + std::string(req.path),
        canonical_json(p.body));
  command.status = p.answer.status;
  command.render = [answer = p.answer](const es::AppendResult& r) { return render(answer, r); };
  command.actor = actor_of(req, "api");
  command.correlation_id = std::string(req.header("X-Correlation-Id").value_or(""));
  command.traceparent = format_traceparent(req.span);
  command.new_stream = p.new_stream;

  auto result = co_await http::await_callback<Result<app::CommandResult>>(
      [&](auto done) { w.service->execute<A>(std::move(command), std::move(done)); });
  if (!result) {
    if (result.error().code == Errc::overloaded && w.ctx.admission) {
      // Answered after a pause: a client that retries at once (a closed-loop load, many
      // SDKs) would otherwise spin on refusals and take the CPU the work behind needs to
      // catch up. The pause costs a timer, not a thread.
      asio::steady_timer pause(co_await asio::this_coro::executor, w.ctx.admission->limits().refusal_pause);
      co_await pause.async_wait(asio::use_awaitable);
    }
    co_return error_for(result.error());
  }
  auto r = accepted(result->status, std::move(result->body), result->version);
  if (result->replayed) {
    if (w.ctx.metrics) w.ctx.metrics->count_idempotent_replay();
    r.set_header("Idempotent-Replayed", "true");
  }
  co_return r;
}

// Parses the body and builds the command: build(object) -> Result<Command>.
template <class A, class Build>
Result<Prepared<A>> prepare(const Request& req, std::string id, Answer answer, Build build) {
  OF_ASSIGN_OR_RETURN(auto body, parse_object(req.body));
  OF_ASSIGN_OR_RETURN(auto cmd, build(body));
  return Prepared<A>{boost::json::value(std::move(body)), std::move(id), std::move(cmd), std::move(answer)};
}

// A route for a command on the entity named by the path's {id}.
template <class A, class Build>
http::Handler entity_command(Writes w, int status, std::string id_field, std::string extra, bool lower_id,
                             Build build) {
  return [w, status, id_field, extra, lower_id, build](Request& req) -> asio::awaitable<Response> {
    std::string id(req.param("id"));
    if (lower_id) id = ascii_lower(id);
    auto prepared = prepare<A>(req, id, Answer{status, id_field, id, extra}, build);
    if (!prepared) co_return error_for(prepared.error());
    co_return co_await run<A>(w, req, std::move(*prepared));
  };
}

// A route that creates an entity whose id is the body's `id_field`.
template <class A, class Build>
http::Handler create_command(Writes w, std::string id_field, Build build) {
  return [w, id_field, build](Request& req) -> asio::awaitable<Response> {
    auto prepared = [&]() -> Result<Prepared<A>> {
      OF_ASSIGN_OR_RETURN(auto body, parse_object(req.body));
      OF_ASSIGN_OR_RETURN(auto id, string_field(body, id_field));
      OF_ASSIGN_OR_RETURN(auto cmd, build(id, body));
      return Prepared<A>{boost::json::value(std::move(body)), id, std::move(cmd), Answer{201, id_field, id, ""}};
    }();
    if (!prepared) co_return error_for(prepared.error());
    co_return co_await run<A>(w, req, std::move(*prepared));
  };
}

}  // namespace

void add_command_routes(http::Router& router, ApiContext& ctx) {
  using namespace domain;
  using json = boost::json::object;
  const Writes w{ctx, std::make_shared<app::CommandService>(ctx.commands, ctx.admission)};

  router.add(Method::post, "/api/v1/products",
             create_command<app::Product>(w, "product_id", [](const std::string& id, const json& o) -> Result<product::Command> {
               OF_ASSIGN_OR_RETURN(auto name, string_field(o, "name"));
               OF_ASSIGN_OR_RETURN(auto price, int_field(o, "unit_price_cents"));
               OF_ASSIGN_OR_RETURN(auto stock, int_field(o, "initial_stock"));
               return product::Command(product::RegisterProduct{id, name, price, stock});
             }));

  router.add(Method::post, "/api/v1/products/{id}/restock",
             entity_command<app::Product>(w, 200, "product_id", "", false, [](const json& o) -> Result<product::Command> {
               OF_ASSIGN_OR_RETURN(auto q, int_field(o, "quantity"));
               return product::Command(product::AddStock{q});
             }));

  router.add(Method::post, "/api/v1/accounts",
             create_command<app::Account>(w, "account_id", [](const std::string& id, const json& o) -> Result<account::Command> {
               OF_ASSIGN_OR_RETURN(auto owner, optional_string_field(o, "owner"));
               return account::Command(account::OpenAccount{id, owner.value_or("")});
             }));

  auto money = [&w](auto make) {
    return entity_command<app::Account>(w, 200, "account_id", "", false, [make](const json& o) -> Result<account::Command> {
      OF_ASSIGN_OR_RETURN(auto amount, int_field(o, "amount_cents"));
      return make(amount);
    });
  };
  router.add(Method::post, "/api/v1/accounts/{id}/deposit",
             money([](std::int64_t a) { return account::Command(account::Deposit{a}); }));
  router.add(Method::post, "/api/v1/accounts/{id}/withdraw",
             money([](std::int64_t a) { return account::Command(account::Withdraw{a}); }));

  router.add(Method::post, "/api/v1/orders", [w](Request& req) -> asio::awaitable<Response> {
    auto prepared = [&]() -> Result<Prepared<app::Order>> {
      OF_ASSIGN_OR_RETURN(auto body, parse_object(req.body));
      OF_ASSIGN_OR_RETURN(auto requested, app::parse_place_order(body));
      const bool server_made_id = requested.order_id.empty();
      // Prices come from the products, never from the client.
      OF_ASSIGN_OR_RETURN(auto priced, app::price_order(w.ctx.commands, std::move(requested)));
      std::string id = priced.order_id;
      return Prepared<app::Order>{boost::json::value(std::move(body)), id, order::Command(std::move(priced)),
                                  Answer{202, "order_id", id, R"(,"status":"PENDING")"}, server_made_id};
    }();
    if (!prepared) co_return error_for(prepared.error());
    co_return co_await run<app::Order>(w, req, std::move(*prepared));
  });

  router.add(Method::post, "/api/v1/orders/{id}/cancel",
             entity_command<app::Order>(w, 200, "order_id", R"(,"status":"CANCELLED")", true,
                                        [](const json& o) -> Result<order::Command> {
                                          OF_ASSIGN_OR_RETURN(auto reason, string_field(o, "reason"));
                                          return order::Command(
                                              order::CancelOrder{reason, order::PaymentStatus::pending, now_unix_ms()});
                                        }));

  router.add(Method::put, "/api/v1/orders/{id}/shipping-status",
             entity_command<app::Order>(w, 200, "order_id", "", true, [](const json& o) -> Result<order::Command> {
               OF_ASSIGN_OR_RETURN(auto status, string_field(o, "status"));
               return order::Command(order::SetShippingStatus{status, now_unix_ms()});
             }));
}

}  // namespace orderflow::api
