#include "store/postgres/leader_lease.h"

#include <gtest/gtest.h>

#include "store/postgres/test_database.h"

namespace orderflow::testing {
namespace {

using postgres::PostgresLeaderLease;

class PostgresLeaderLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test_server()) GTEST_SKIP() << "ORDERFLOW_TEST_PG is not set (scripts/pg-test-server.sh sets it)";
    admin_ = postgres::Connection::open(test_server(), "");
    ASSERT_TRUE(admin_) << admin_.error().message;
    for (const auto* s : {&schema_, &other_schema_})
      ASSERT_TRUE(admin_->exec("CREATE SCHEMA " + postgres::quote_identifier(s->name())));
  }

  PostgresLeaderLease lease(const TestSchema& schema, std::string name = "saga") {
    return PostgresLeaderLease(test_server(), schema.name(), std::move(name));
  }

  static bool holds(PostgresLeaderLease& l) {
    auto r = l.hold();
    return r && *r;
  }

  // Ends the sessions holding the lease `name` of `schema` (as if their process died).
  void kill_holder(const TestSchema& schema, const std::string& name) {
    auto r = admin_->query(
        {"SELECT count(pg_terminate_backend(l.pid, 5000)) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
         "AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('orderflow.lease.' || $1 || '.' || $2, 0)",
         {schema.name(), name}});
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->text(0, 0), "1");
  }

  TestSchema schema_, other_schema_;
  Result<postgres::Connection> admin_ = fail(Errc::internal, "not connected");
};

TEST_F(PostgresLeaderLeaseTest, OneHolderAtATimeAndAStandbyTakesOverWhenItGoes) {
  auto a = lease(schema_), b = lease(schema_);
  EXPECT_TRUE(holds(a));
  EXPECT_FALSE(holds(b));
  EXPECT_TRUE(holds(a));  // confirmed while its session lives
  EXPECT_FALSE(holds(b));
  a.release();
  EXPECT_TRUE(holds(b));
  EXPECT_FALSE(holds(a));

  // The holder's session ends (its process was killed): it learns so at its next hold(),
  // and the standby takes the lease.
  kill_holder(schema_, "saga");
  EXPECT_FALSE(holds(b));
  EXPECT_TRUE(holds(a));
  EXPECT_FALSE(holds(b));
  EXPECT_TRUE(holds(a));
}

TEST_F(PostgresLeaderLeaseTest, LeasesOfOtherNamesAndSchemasAreIndependent) {
  auto a = lease(schema_), other_name = lease(schema_, "relay"), other_schema = lease(other_schema_);
  EXPECT_TRUE(holds(a));
  EXPECT_TRUE(holds(other_name));
  EXPECT_TRUE(holds(other_schema));
}

}  // namespace
}  // namespace orderflow::testing
