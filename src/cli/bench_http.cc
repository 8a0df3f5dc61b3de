// orderflow bench http: load against a running server with our own closed-loop load
// generator (api/http/load_generator), after seeding what the scenario needs.
#include <fmt/core.h>

#include <boost/json.hpp>
#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include "api/http/load_generator.h"
#include "cli/bench.h"
#include "cli/http_client.h"
#include "core/time.h"
#include "core/uuid.h"

namespace orderflow::cli {

namespace {

// A 503 (the server refuses writes while its saga is behind: another run's load, on a
// shared database another process's) wrote nothing: asked again for up to a minute.
Result<void> seed(const HttpTarget& t, const std::string& path, const std::string& body) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  for (;;) {
    OF_ASSIGN_OR_RETURN(auto answer, http_request(t, "POST", path, body));
    if (answer.status / 100 == 2) return {};
    if (answer.status != 503 || std::chrono::steady_clock::now() >= give_up)
      return fail(Errc::internal, fmt::format("seeding: POST {} answered {} {}", path, answer.status, answer.body));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// The projections' lag from append to live read model, as the server measured it over the
// last events each applied: after write load, the load just run. Waits (up to 10 s) until
// every projection has caught up, so the last writes are in the figures. Printed and added
// to `out` as PREFIXprojection_lag_p50_ms / PREFIXprojection_lag_p99_ms, by projection.
Result<void> add_projection_lag(const HttpTarget& t, boost::json::object& out, const std::string& prefix = "") {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  boost::json::array list;
  for (;;) {
    OF_ASSIGN_OR_RETURN(auto answer, http_request(t, "GET", "/api/v1/admin/projections", ""));
    if (answer.status != 200)
      return fail(Errc::internal, fmt::format("GET /api/v1/admin/projections answered {}", answer.status));
    list = boost::json::parse(answer.body).as_array();
    bool caught_up = true;
    for (const auto& p : list) caught_up = caught_up && p.at("lag").to_number<std::int64_t>() == 0;
    if (caught_up || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  boost::json::object p50, p99;
  fmt::print("{:<12} {:>14} {:>14}\n", "projection", "lag p50 ms", "lag p99 ms");
  for (const auto& p : list) {
    const auto name = std::string(p.at("name").as_string());
    p50[name] = p.at("lag_p50_ms");
    p99[name] = p.at("lag_p99_ms");
    auto shown = [](const boost::json::value& v) { return v.is_null() ? std::string("-") : fmt::format("{:.1f}", v.to_number<double>()); };
    fmt::print("{:<12} {:>14} {:>14}\n", name, shown(p50[name]), shown(p99[name]));
  }
  out[prefix + "projection_lag_p50_ms"] = std::move(p50);
  out[prefix + "projection_lag_p99_ms"] = std::move(p99);
  return {};
}

constexpr int kOrders = 2000;

}  // namespace

std::string BenchCatalogue::product(std::uint64_t i) const { return fmt::format("bench-{}-p{}", run, i % kProducts); }
std::string BenchCatalogue::customer(std::uint64_t i) const {
  return fmt::format("bench-{}-c{}", run, i % kCustomers);
}

Result<BenchCatalogue> seed_catalogue(const HttpTarget& t, bool accounts, bool personal_data) {
  BenchCatalogue c{uuid_v7().substr(9, 4) + uuid_v7().substr(24, 8)};
  fmt::print("seeding {} products{}...\n", c.kProducts, accounts ? fmt::format(" and {} accounts", c.kCustomers) : "");
  for (int i = 0; i < c.kProducts; ++i)
    OF_RETURN_IF_ERROR(
        seed(t, "/api/v1/products",
             fmt::format(R"({{"product_id":"{}","name":"Bench {}","unit_price_cents":{},"initial_stock":1000000000}})",
                         c.product(static_cast<std::uint64_t>(i)), i, 100 + i)));
  if (accounts)
    for (int i = 0; i < c.kCustomers; ++i) {
      auto id = c.customer(static_cast<std::uint64_t>(i));
      const auto body = personal_data ? fmt::format(R"({{"account_id":"{}","owner":"Owner of {}"}})", id, id)
                                      : fmt::format(R"({{"account_id":"{}"}})", id);
      OF_RETURN_IF_ERROR(seed(t, "/api/v1/accounts", body));
      OF_RETURN_IF_ERROR(seed(t, "/api/v1/accounts/" + id + "/deposit", R"({"amount_cents":1000000000000})"));
    }
  return c;
}

int bench_http(const HttpBenchOptions& o) {
  auto target = parse_http_target(o.target);
  if (!target) return runtime_failure(target.error().message);
  target->token = o.token;
  // A flash sale: every order for one unit of one product, charged to one account (the
  // saga's hottest case: every order goes through the same two streams).
  const bool flash = o.scenario == "flash-sale";
  const bool confirmed = o.scenario == "place-order-confirmed" || flash;  // placed, then followed to CONFIRMED
  const bool orders = o.scenario == "place-order" || confirmed;
  // One account's stream written by every connection: the hottest stream a command can
  // have (each deposit is decided on the state the one before it leaves).
  const bool one_stream = o.scenario == "deposit-one-account";
  const bool deposits = o.scenario == "deposit" || one_stream;
  const bool products = o.scenario == "get-product";
  const bool get_order = o.scenario == "get-order";
  const bool list_orders = o.scenario == "list-orders";
  if (!orders && !deposits && !products && !get_order && !list_orders)
    return runtime_failure(
        "--scenario must be place-order, place-order-confirmed, flash-sale, deposit, deposit-one-account, "
        "get-product, get-order or list-orders");

  auto catalogue = seed_catalogue(*target, orders || deposits || get_order || list_orders, o.personal_data);
  if (!catalogue) return runtime_failure(catalogue.error().message);
  const auto& run = catalogue->run;
  auto product = [&](std::uint64_t i) { return catalogue->product(i); };
  auto customer = [&](std::uint64_t i) { return catalogue->customer(i); };

  // The read scenarios read orders placed here (served from the orders projection).
  std::vector<std::string> order_ids;
  if (get_order || list_orders) {
    fmt::print("seeding {} orders...\n", kOrders);
    for (int i = 0; i < kOrders; ++i) {
      auto answer = http_request(*target, "POST", "/api/v1/orders",
                                 fmt::format(R"({{"customer_id":"{}","items":[{{"product_id":"{}","quantity":1}}]}})",
                                             customer(static_cast<std::uint64_t>(i)), product(static_cast<std::uint64_t>(i))));
      if (!answer || answer->status != 202) return runtime_failure("seeding orders failed");
      order_ids.emplace_back(boost::json::parse(answer->body).as_object().at("order_id").as_string());
    }
  }

  http::LoadOptions options;
  options.host = target->host;
  options.port = target->port;
  options.scenario = o.scenario;
  options.connections = o.connections;
  options.duration = std::chrono::milliseconds(static_cast<std::int64_t>(o.duration_s * 1000));
  options.warmup = std::chrono::milliseconds(static_cast<std::int64_t>(o.warmup_s * 1000));
  options.io_threads = o.io_threads;
  options.rate = o.rate;

  const auto measured_from = now_unix_ms() + options.warmup.count();
  auto report = http::run_load(options, [&](std::uint64_t, std::mt19937_64& rng) {
    http::LoadRequest req;
    if (!o.token.empty()) req.headers.emplace_back("Authorization", "Bearer " + o.token);
    if (flash) {
      req.method = http::Method::post;
      req.target = "/api/v1/orders";
      req.body = fmt::format(R"({{"customer_id":"{}","items":[{{"product_id":"{}","quantity":1}}]}})", customer(0),
                             product(0));
    } else if (orders) {
      req.method = http::Method::post;
      req.target = "/api/v1/orders";
      auto lines = 1 + rng() % 3;
      std::string items;
      for (std::uint64_t l = 0; l < lines; ++l)
        items += fmt::format(R"({}{{"product_id":"{}","quantity":{}}})", l ? "," : "", product(rng()), 1 + rng() % 3);
      req.body = o.personal_data ? fmt::format(R"({{"customer_id":"{}","items":[{}],"shipping_address":"{} Bench Street, Leeds"}})",
                                               customer(rng()), items, rng() % 1000)
                                 : fmt::format(R"({{"customer_id":"{}","items":[{}]}})", customer(rng()), items);
    } else if (deposits) {
      req.method = http::Method::post;
      req.target = "/api/v1/accounts/" + customer(one_stream ? 0 : rng()) + "/deposit";
      req.body = fmt::format(R"({{"amount_cents":{}}})", 1 + rng() % 100);
    } else if (get_order) {
      req.target = "/api/v1/orders/" + order_ids[rng() % order_ids.size()];
    } else if (list_orders) {
      req.target = "/api/v1/orders?limit=20&customer_id=" + customer(rng());
    } else {
      req.target = "/api/v1/products/" + product(rng());
    }
    return req;
  });
  if (!report) return runtime_failure(report.error().message);
  http::print_report(std::cout, *report);
  auto json = http::to_json(*report);
  if (confirmed)
    if (auto r = measure_confirmations(*target, fmt::format("bench-{}-c", run), measured_from,
                                       measured_from + options.duration.count(), json);
        !r)
      return runtime_failure(r.error().message);
  if (orders || deposits) {
    if (auto r = add_projection_lag(*target, json); !r) return runtime_failure(r.error().message);
    if (!o.lag_from.empty()) {
      auto from = parse_http_target(o.lag_from);
      if (!from) return runtime_failure(from.error().message);
      from->token = o.token;
      fmt::print("as {} measured it:\n", o.lag_from);
      if (auto r = add_projection_lag(*from, json, "lag_from_"); !r) return runtime_failure(r.error().message);
    }
  }
  std::cout << boost::json::serialize(json) << std::endl;
  // 503s are the server saying "later" (admission control, printed as refused_503 and its
  // share); any other failure fails the run.
  return report->non_2xx() - report->refused_503 + report->transport_errors == 0 ? 0 : 1;
}

}  // namespace orderflow::cli
