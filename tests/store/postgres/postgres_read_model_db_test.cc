// PostgresReadModelDb runs the ReadModelDb contract suite, and between processes: several
// open one database and create its tables at once, one at a time holds a projection, a
// claim ends with its connection, and one released is taken by another process at once
// while the first lives on. (Skipped without ORDERFLOW_TEST_PG.)
#include "store/postgres/postgres_read_model_db.h"

#include <gtest/gtest.h>

#include <thread>

#include "es/read_model_db_contract.h"
#include "store/postgres/test_database.h"

namespace orderflow::testing {
namespace {

using namespace std::chrono_literals;
using postgres::PostgresReadModelDb;

const char* const kNoServer = "ORDERFLOW_TEST_PG is not set (scripts/pg-test-server.sh sets it)";

class PostgresReadModelHarness final : public ReadModelDbHarness {
 public:
  PostgresReadModelHarness() {
    auto db = PostgresReadModelDb::open({.conninfo = test_server(), .schema = schema_.name()});
    if (!db) throw std::runtime_error(db.error().message);
    db_ = std::move(*db);
  }
  es::ReadModelDb& db() override { return *db_; }

 private:
  TestSchema schema_;
  std::unique_ptr<PostgresReadModelDb> db_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, ReadModelDbContract,
                         ::testing::Values(ReadModelDbContractParam{
                             "postgres", [] { return std::string(test_server() ? "" : kNoServer); },
                             [] { return std::unique_ptr<ReadModelDbHarness>(new PostgresReadModelHarness()); }}),
                         [](const auto& info) { return info.param.name; });

const std::string kCreate[] = {"CREATE TABLE IF NOT EXISTS things (n bigint NOT NULL)"};

Result<void> write_something(es::ReadModelDb& db) {
  return db.transaction("orders", [](es::WriteTransaction& tx) {
    const es::SqlValue params[] = {std::int64_t{0}};
    return tx.run("INSERT INTO things (n) VALUES ($1)", params);
  });
}

// Deployments in two schemas of one database, each named by its URL's search_path (no
// schema option): each holds its own projections. (Advisory locks are per database: keyed
// without the schema, the second waited for the first to stop.)
TEST(PostgresReadModelDb, DeploymentsInTwoSchemasNamedByTheirUrlsEachHoldTheirProjections) {
  if (!test_server()) GTEST_SKIP() << kNoServer;
  TestSchema a, b;
  auto open_in = [](const TestSchema& schema) {
    (void)schema.connect().exec("CREATE SCHEMA IF NOT EXISTS " + postgres::quote_identifier(schema.name()));
    const std::string url = std::string(test_server()) + "?options=-c%20search_path%3D" + schema.name();
    auto db = PostgresReadModelDb::open({.conninfo = url});
    if (!db) throw std::runtime_error(db.error().message);
    return std::move(*db);
  };
  auto in_a = open_in(a), in_b = open_in(b), again_in_a = open_in(a);
  auto claimed = in_a->claim("orders");
  ASSERT_TRUE(claimed) << claimed.error().message;
  EXPECT_TRUE(*claimed);
  claimed = in_b->claim("orders");
  ASSERT_TRUE(claimed) << claimed.error().message;
  EXPECT_TRUE(*claimed) << "schema " << b.name() << " could not hold its own projection";
  claimed = again_in_a->claim("orders");
  ASSERT_TRUE(claimed) << claimed.error().message;
  EXPECT_FALSE(*claimed) << "two writers of one projection in one schema";
}

TEST(PostgresReadModelDb, ProcessesOpenAtOnceAndOneAtATimeHoldsAProjection) {
  if (!test_server()) GTEST_SKIP() << kNoServer;
  TestSchema schema;
  std::vector<std::unique_ptr<PostgresReadModelDb>> dbs(6);
  {
    std::vector<std::thread> opening;
    for (auto& db : dbs)
      opening.emplace_back([&] {
        auto opened = PostgresReadModelDb::open({.conninfo = test_server(), .schema = schema.name()});
        if (opened && (*opened)->create_tables(kCreate)) db = std::move(*opened);
      });
    for (auto& t : opening) t.join();
  }
  for (const auto& db : dbs) ASSERT_TRUE(db) << "an open or its create_tables failed";

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

// A process that stops writing a projection while it lives on (the saga's dead letters,
// when its lease moved) releases the claim: another takes it at once, and the first writes
// again only once it claims it anew.
TEST(PostgresReadModelDb, AReleasedClaimIsTakenByAnotherProcessWhileTheFirstLivesOn) {
  if (!test_server()) GTEST_SKIP() << kNoServer;
  TestSchema schema;
  auto first = PostgresReadModelDb::open({.conninfo = test_server(), .schema = schema.name()});
  auto second = PostgresReadModelDb::open({.conninfo = test_server(), .schema = schema.name()});
  ASSERT_TRUE(first && second);
  ASSERT_TRUE((*first)->create_tables(kCreate));
  ASSERT_TRUE(*(*first)->claim("orders"));
  ASSERT_TRUE(write_something(**first));
  EXPECT_FALSE(*(*second)->claim("orders"));

  ASSERT_TRUE((*first)->release("orders"));
  EXPECT_EQ(write_something(**first).error().code, Errc::unavailable) << "written after its release";
  auto taken = (*second)->claim("orders");
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_TRUE(*taken) << "the released claim was still held";
  EXPECT_TRUE(write_something(**second));
  EXPECT_FALSE(*(*first)->claim("orders"));
  ASSERT_TRUE((*second)->release("orders"));
  EXPECT_TRUE(*(*first)->claim("orders")) << "claimed anew";
  EXPECT_TRUE(write_something(**first));
}

// A process fed from a bus acknowledges each batch after its commit: its writers commit
// with synchronous_commit=on; the others with off (a lost batch is applied again from the log).
TEST(PostgresReadModelDb, WritersCommitDurablyOnlyWhenAsked) {
  if (!test_server()) GTEST_SKIP() << kNoServer;
  TestSchema schema;
  for (const bool durable : {false, true}) {
    auto db = PostgresReadModelDb::open(
        {.conninfo = test_server(), .schema = schema.name(), .durable_commits = durable});
    ASSERT_TRUE(db) << db.error().message;
    ASSERT_TRUE(*(*db)->claim("orders"));
    std::string setting;
    ASSERT_TRUE((*db)->transaction("orders", [&](es::WriteTransaction& tx) {
      return tx.query("SELECT current_setting('synchronous_commit')", {},
                      [&](const es::Row& row) { setting = std::string(row.text(0)); });
    }));
    EXPECT_EQ(setting, durable ? "on" : "off");
    ASSERT_TRUE((*db)->release("orders"));
  }
}

}  // namespace
}  // namespace orderflow::testing
