// The OpenAPI document the binary serves (/api/v1/openapi.json, from docs/openapi.yaml) against the
// router `serve` builds with every role: each route the router has is documented with its method,
// and each documented operation is a route (issue #13). Paths are compared as written, so the
// document's parameter names are the router's. Every route the rate limiter applies to (all but
// the open ones of the access table) documents its 429.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api/access.h"
#include "api/api.h"
#include "api/metrics.h"
#include "app/command_handler.h"
#include "app/event_log.h"
#include "app/dead_letters.h"
#include "app/invariants.h"
#include "app/saga/saga_admin.h"
#include "app/projections/read_side.h"
#include "store/sqlite/sqlite_read_model_db.h"
#include "store/sqlite/sqlite_event_store.h"
#include "support/temp_dir.h"

namespace orderflow::api {
namespace {

using Operations = std::set<std::string>;  // "GET /api/v1/orders/{id}"

// The routes of the router serve builds with every role (serve.cc): make_router, then the saga
// routes of the admin role.
std::vector<std::pair<http::Method, std::string>> routes() {
  testing::TempDir dir;
  auto store = sqlite::SqliteEventStore::open({.path = dir.file("events.db")});
  EXPECT_TRUE(store);
  app::CommandHandler commands(**store, store->get());
  auto db = sqlite::SqliteReadModelDb::open(dir.file("readmodels.db"));
  EXPECT_TRUE(db);
  auto read = app::projections::ReadSide::open(std::move(*db), **store);
  Metrics metrics;
  app::EventLog events(**store);
  ApiContext ctx{commands, events, read.get(), &metrics, es::Position{0}};
  auto router = make_router(ctx);
  app::saga::SagaAdmin sagas(**store, nullptr);
  app::InvariantChecks invariants(**store);
  app::DeadLetterAdmin dead_letters(sagas, {});
  add_saga_routes(router, sagas, dead_letters, invariants);
  std::vector<std::pair<http::Method, std::string>> out;
  for (const auto& [method, pattern] : router.routes()) out.emplace_back(method, pattern);
  return out;
}

std::string operation(http::Method method, const std::string& pattern) {
  return std::string(http::method_name(method)) + " " + pattern;
}

Operations served() {
  Operations out;
  for (const auto& [method, pattern] : routes()) out.insert(operation(method, pattern));
  return out;
}

Operations documented() {
  const auto doc = boost::json::parse(openapi_json()).as_object();
  Operations out;
  for (const auto& [path, item] : doc.at("paths").as_object())
    for (const auto& [key, operation] : item.as_object()) {
      if (key == "parameters" || key == "summary" || key == "description") continue;  // not methods
      std::string method(key);
      for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.insert(method + " " + std::string(path));
    }
  return out;
}

Operations minus(const Operations& a, const Operations& b) {
  Operations out;
  for (const auto& x : a)
    if (!b.contains(x)) out.insert(x);
  return out;
}

TEST(OpenApi, EveryRouteIsDocumented) {
  const auto routes = served();
  ASSERT_GT(routes.size(), 30u);
  EXPECT_EQ(minus(routes, documented()), Operations{}) << "routes the router has that docs/openapi.yaml does not document";
}

TEST(OpenApi, EveryDocumentedOperationIsARoute) {
  const auto ops = documented();
  ASSERT_GT(ops.size(), 30u);
  EXPECT_EQ(minus(ops, served()), Operations{}) << "operations docs/openapi.yaml documents that the router does not have";
}

TEST(OpenApi, EveryRateLimitedRouteDocuments429WithRetryAfterAndNoOpenRouteDoes) {
  const auto doc = boost::json::parse(openapi_json()).as_object();
  Operations missing, extra;
  for (const auto& [method, pattern] : routes()) {
    std::string key(http::method_name(method));
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto* path = doc.at("paths").as_object().if_contains(pattern);
    if (path == nullptr || !path->as_object().contains(key)) continue;  // EveryRouteIsDocumented says so
    const auto& responses = path->at(key).at("responses").as_object();
    const bool limited = !access_of(method, pattern).open;
    if (limited && !responses.contains("429")) missing.insert(operation(method, pattern));
    if (!limited && responses.contains("429")) extra.insert(operation(method, pattern));
  }
  EXPECT_EQ(missing, Operations{}) << "routes the rate limiter applies to without a documented 429";
  EXPECT_EQ(extra, Operations{}) << "open routes (never limited) that document a 429";

  const auto& too_many = doc.at("components").at("responses").at("TooManyRequests").as_object();
  EXPECT_TRUE(too_many.at("headers").as_object().contains("Retry-After"));
  const auto& codes =
      doc.at("components").at("schemas").at("Error").at("properties").at("error").at("properties").at("code").at("enum");
  EXPECT_NE(std::find(codes.as_array().begin(), codes.as_array().end(), boost::json::value("rate_limited")),
            codes.as_array().end());
}

TEST(OpenApi, TheServedDocumentIsOpenApi31) {
  const auto doc = boost::json::parse(openapi_json()).as_object();
  EXPECT_EQ(doc.at("openapi").as_string().subview().substr(0, 4), "3.1.");
}

}  // namespace
}  // namespace orderflow::api
