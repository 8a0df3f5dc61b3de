// The OpenAPI document the binary serves (/api/v1/openapi.json, from docs/openapi.yaml) against the
// router `serve` builds with every role: each route the router has is documented with its method,
// and each documented operation is a route (issue #13). Paths are compared as written, so the
// document's parameter names are the router's.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>

#include "api/api.h"
#include "api/metrics.h"
#include "app/command_handler.h"
#include "app/projections/read_side.h"
#include "app/projections/sqlite_read_model_db.h"
#include "store/sqlite/sqlite_event_store.h"
#include "support/temp_dir.h"

namespace orderflow::api {
namespace {

using Operations = std::set<std::string>;  // "GET /api/v1/orders/{id}"

// The routes of the router serve builds with every role (serve.cc): make_router, then the saga
// routes of the admin role.
Operations served() {
  testing::TempDir dir;
  auto store = sqlite::SqliteEventStore::open({.path = dir.file("events.db")});
  EXPECT_TRUE(store);
  app::CommandHandler commands(**store, store->get());
  auto db = app::projections::SqliteReadModelDb::open(dir.file("readmodels.db"));
  EXPECT_TRUE(db);
  auto read = app::projections::ReadSide::open(std::move(*db), **store);
  Metrics metrics;
  ApiContext ctx{commands, **store, read.get(), &metrics, 0};
  auto router = make_router(ctx);
  add_saga_routes(router, ctx, nullptr);
  Operations out;
  for (const auto& [method, pattern] : router.routes()) out.insert(std::string(http::method_name(method)) + " " + pattern);
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

TEST(OpenApi, TheServedDocumentIsOpenApi31) {
  const auto doc = boost::json::parse(openapi_json()).as_object();
  EXPECT_EQ(doc.at("openapi").as_string().subview().substr(0, 4), "3.1.");
}

}  // namespace
}  // namespace orderflow::api
