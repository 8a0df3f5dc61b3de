// orderflow demo: seeds a small catalogue and two accounts, places a few orders and
// prints what happened — on the embedded store in --data (when no server holds it) or
// through a running server's HTTP API (--target).
#include <fmt/core.h>

#include <memory>

#include "api/api.h"
#include "api/http/server.h"
#include "app/command_handler.h"
#include "cli/commands.h"
#include "cli/http_client.h"
#include "cli/store_factory.h"

namespace orderflow::cli {

namespace {

struct DemoOptions {
  StoreSpec store;
  std::string target;  // http://HOST:PORT; empty: the embedded store
};

struct Product {
  const char* id;
  const char* name;
  std::int64_t price, stock;
};
constexpr Product kCatalogue[] = {
    {"mug", "Enamel mug", 1299, 40}, {"tea", "Green tea, 100 g", 850, 25}, {"kettle", "Stovetop kettle", 4900, 2}};

struct Step {
  std::string what, path, body;
};

// The demo as a script of API calls, so both ways run the same thing.
std::vector<Step> script() {
  std::vector<Step> steps;
  for (const auto& p : kCatalogue)
    steps.push_back({fmt::format("register product {} ({} at {} cents, {} in stock)", p.id, p.name, p.price, p.stock),
                     "/api/v1/products",
                     fmt::format(R"({{"product_id":"{}","name":"{}","unit_price_cents":{},"initial_stock":{}}})", p.id,
                                 p.name, p.price, p.stock)});
  steps.push_back({"open account ada", "/api/v1/accounts", R"({"account_id":"ada","owner":"Ada Lovelace"})"});
  steps.push_back({"open account bob", "/api/v1/accounts", R"({"account_id":"bob","owner":"Bob"})"});
  steps.push_back({"deposit 100.00 to ada", "/api/v1/accounts/ada/deposit", R"({"amount_cents":10000})"});
  steps.push_back({"deposit 5.00 to bob", "/api/v1/accounts/bob/deposit", R"({"amount_cents":500})"});
  steps.push_back({"ada orders 2 mugs and a tea", "/api/v1/orders",
                   R"({"customer_id":"ada","items":[{"product_id":"mug","quantity":2},{"product_id":"tea","quantity":1}]})"});
  steps.push_back({"bob orders a kettle", "/api/v1/orders",
                   R"({"customer_id":"bob","items":[{"product_id":"kettle","quantity":1}]})"});
  steps.push_back({"ada tries to order a product that does not exist", "/api/v1/orders",
                   R"({"customer_id":"ada","items":[{"product_id":"piano","quantity":1}]})"});
  steps.push_back({"bob withdraws more than he has", "/api/v1/accounts/bob/withdraw", R"({"amount_cents":900})"});
  steps.push_back({"restock kettles", "/api/v1/products/kettle/restock", R"({"quantity":10})"});
  return steps;
}

int demo_http(const DemoOptions& o) {
  auto target = parse_http_target(o.target);
  if (!target) return runtime_failure(target.error().message);
  for (const auto& step : script()) {
    auto answer = http_request(*target, "POST", step.path, step.body);
    if (!answer) return runtime_failure(answer.error().message);
    fmt::print("{:<52} -> {} {}\n", step.what, answer->status, answer->body);
  }
  return 0;
}

// The same script against the embedded store: a server of our own on a free loopback
// port, for the length of the demo.
int demo_embedded(const DemoOptions& o) {
  auto store = open_store(o.store);
  if (!store) return runtime_failure(store.error().message);
  app::PersonalData personal(store->customer_keys(), store->events(), store->personal_data_options());
  app::CommandHandler commands(store->events(), &store->snapshots(), {.personal_data = &personal});
  app::EventLog event_log(store->events());
  api::ApiContext ctx{commands, event_log};
  ctx.personal = &personal;
  auto server = http::HttpServer::listen(api::make_router(ctx), {});
  if (!server) return runtime_failure(server.error().message);
  server->start();
  DemoOptions over_http = o;
  over_http.target = fmt::format("http://127.0.0.1:{}", server->port());
  int rc = demo_http(over_http);
  server->stop();
  server->join();
  return rc;
}

}  // namespace

void add_demo(CLI::App& root, Settings& settings, Action& action) {
  auto o = std::make_shared<DemoOptions>();
  auto* cmd = root.add_subcommand("demo", "Seed a small catalogue and accounts, place a few orders, print what happened");
  // Not the shared `data`: a demo seeds its own directory, never the server's.
  settings.add(*cmd, "data", o->store.data_dir, "Data directory of the embedded store");
  settings.add(*cmd, "target", o->target, "A running server, http://HOST:PORT (instead of the embedded store)");
  cmd->callback([o, &action] { action = [o] { return o->target.empty() ? demo_embedded(*o) : demo_http(*o); }; });
}

}  // namespace orderflow::cli
