// PostgresReadModelDb between processes: several open one database at once, one at a time
// holds a projection, and a claim ends with its connection. (Skipped without
// ORDERFLOW_TEST_PG.)
#include "app/projections/postgres_read_model_db.h"

#include <gtest/gtest.h>

#include <thread>

#include "store/postgres/test_database.h"

namespace orderflow::app::projections {
namespace {

using namespace std::chrono_literals;
using testing::test_server;

Result<void> write_something(ReadModelDb& db) {
  return db.transaction("orders", [](WriteTransaction& tx) {
    const SqlValue params[] = {std::int64_t{0}};
    return tx.run("UPDATE read_models SET position = ?1 WHERE projection = 'none'", params);
  });
}

TEST(PostgresReadModelDb, ProcessesOpenAtOnceAndOneAtATimeHoldsAProjection) {
  if (!test_server()) GTEST_SKIP() << "ORDERFLOW_TEST_PG is not set (scripts/pg-test-server.sh sets it)";
  testing::TestSchema schema;
  std::vector<std::unique_ptr<PostgresReadModelDb>> dbs(6);
  {
    std::vector<std::thread> opening;
    for (auto& db : dbs)
      opening.emplace_back([&] {
        auto opened = PostgresReadModelDb::open({.conninfo = test_server(), .schema = schema.name()});
        if (opened) db = std::move(*opened);
      });
    for (auto& t : opening) t.join();
  }
  for (const auto& db : dbs) ASSERT_TRUE(db) << "an open failed";

  std::size_t holder = dbs.size();
  for (std::size_t i = 0; i < dbs.size(); ++i) {
    auto claimed = dbs[i]->claim("orders");
    ASSERT_TRUE(claimed) << claimed.error().message;
    if (*claimed) {
      EXPECT_EQ(holder, dbs.size()) << "two processes hold one projection";
      holder = i;
    }
  }
  ASSERT_LT(holder, dbs.size());
  EXPECT_TRUE(*dbs[holder]->claim("orders")) << "a claim is kept";
  EXPECT_TRUE(*dbs[(holder + 1) % dbs.size()]->claim("products")) << "projections are claimed one by one";
  EXPECT_TRUE(write_something(*dbs[holder]));
  const auto other = (holder + 2) % dbs.size();
  EXPECT_EQ(write_something(*dbs[other]).error().code, Errc::unavailable);

  dbs[holder].reset();  // its connections close, its claims with them
  bool taken = false;
  for (int i = 0; i < 500 && !taken; ++i) {
    taken = *dbs[other]->claim("orders");
    if (!taken) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(taken);
  EXPECT_TRUE(write_something(*dbs[other]));
}

}  // namespace
}  // namespace orderflow::app::projections
