#include "store/postgres/pg.h"

#include <gtest/gtest.h>

#include "store/postgres/test_database.h"

namespace orderflow::testing {
namespace {

using postgres::Query;

// How many statements this connection has prepared with `sql`'s text.
int prepared_with(postgres::Connection& c, const std::string& sql) {
  auto r = c.query({"SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", {sql}, true});
  if (!r) throw std::runtime_error(r.error().message);
  return std::stoi(std::string(r->text(0, 0)));
}

TEST(PostgresConnection, AStatementPlannedEachTimeIsNeverPrepared) {
  if (!test_server()) GTEST_SKIP() << "ORDERFLOW_TEST_PG is not set (scripts/pg-test-server.sh sets it)";
  TestSchema schema;
  auto c = schema.connect();
  const std::string each_time = "SELECT $1::bigint + 1", prepared = "SELECT $1::bigint + 2";
  for (int i = 0; i < 2; ++i) {
    auto alone = c.query({each_time.c_str(), {"40"}, true});
    ASSERT_TRUE(alone) << alone.error().message;
    EXPECT_EQ(alone->text(0, 0), "41");
    auto piped = c.pipeline(
        {Query{each_time.c_str(), {"1"}, true}, Query{prepared.c_str(), {"1"}}, Query{each_time.c_str(), {"2"}, true}});
    ASSERT_TRUE(piped) << piped.error().message;
    ASSERT_EQ(piped->size(), 3u);
    EXPECT_EQ((*piped)[0].text(0, 0), "2");
    EXPECT_EQ((*piped)[1].text(0, 0), "3");
    EXPECT_EQ((*piped)[2].text(0, 0), "3");
  }
  EXPECT_EQ(prepared_with(c, each_time), 0);
  EXPECT_EQ(prepared_with(c, prepared), 1);  // once, on its first use
}

}  // namespace
}  // namespace orderflow::testing
