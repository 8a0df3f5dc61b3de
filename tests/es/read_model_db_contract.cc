#include "es/read_model_db_contract.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace orderflow::testing {
namespace {

using es::Row;
using es::SqlValue;
using es::WriteTransaction;

// A table `notes (id text PRIMARY KEY, note text, n integer)` in the database's dialect.
void create_notes(es::ReadModelDb& db) {
  const auto& d = db.dialect();
  const std::string create[] = {"CREATE TABLE IF NOT EXISTS notes (id " + d.text + " PRIMARY KEY, note " + d.text +
                                " NOT NULL, n " + d.integer + " NOT NULL)" + d.table_options};
  ASSERT_TRUE(db.create_tables(create));
  ASSERT_TRUE(db.create_tables(create)) << "creating what exists changes nothing";
  auto claimed = db.claim("contract");
  ASSERT_TRUE(claimed && *claimed);
}

Result<void> insert(es::ReadModelDb& db, std::string_view id, std::int64_t n) {
  const auto& d = db.dialect();
  return db.transaction("contract", [&](WriteTransaction& tx) {
    const SqlValue params[] = {id, n};
    return tx.run("INSERT INTO notes (id, note, n) VALUES (" + d.param(1) + ", '', " + d.param(2) + ")", params);
  });
}

std::vector<std::string> ids(es::ReadModelDb& db) {
  std::vector<std::string> out;
  EXPECT_TRUE(db.query("SELECT id FROM notes ORDER BY id", {}, [&](const Row& r) { out.emplace_back(r.text(0)); }));
  return out;
}

// What a statement's parameters look like in either dialect, inside a string literal: the
// text is the database's to read, nobody rewrites it.
constexpr std::string_view kLiteral = "why? ?1 $1 $ ?? {g} 'quoted'";

TEST_P(ReadModelDbContract, StringLiteralsReachTheDatabaseAsWritten) {
  create_notes(db());
  const auto& d = db().dialect();
  const std::string literal = "'why? ?1 $1 $ ?? {g} ''quoted'''";
  ASSERT_TRUE(db().transaction("contract", [&](WriteTransaction& tx) -> Result<void> {
    const SqlValue params[] = {std::string_view("a"), std::int64_t{7}};
    if (auto r = tx.run("INSERT INTO notes (id, note, n) VALUES (" + d.param(1) + ", " + literal + ", " + d.param(2) +
                            ")",
                        params);
        !r)
      return r;
    // Read back inside the transaction too (PostgreSQL sends the insert with it).
    std::string seen;
    const SqlValue id[] = {std::string_view("a")};
    if (auto r = tx.query("SELECT note FROM notes WHERE id = " + d.param(1) + " AND note = " + literal, id,
                          [&](const Row& r) { seen = r.text(0); });
        !r)
      return r;
    EXPECT_EQ(seen, kLiteral);
    return {};
  }));
  std::string note, also;
  std::int64_t n = 0;
  const SqlValue params[] = {std::string_view("a")};
  ASSERT_TRUE(db().query("SELECT note, n, 'and? $2 ?2' FROM notes WHERE id = " + d.param(1) + " AND note = " + literal,
                         params, [&](const Row& r) {
                           note = r.text(0);
                           n = r.int64(1);
                           also = r.text(2);
                         }));
  EXPECT_EQ(note, kLiteral);
  EXPECT_EQ(n, 7);
  EXPECT_EQ(also, "and? $2 ?2");
}

TEST_P(ReadModelDbContract, TextSortsBytewiseAndIntegersHoldSixtyFourBits) {
  create_notes(db());
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max(), kMin = std::numeric_limits<std::int64_t>::min();
  ASSERT_TRUE(insert(db(), "a", kMax));
  ASSERT_TRUE(insert(db(), "\xc3\xa9", 1));  // é
  ASSERT_TRUE(insert(db(), "B", kMin));
  ASSERT_TRUE(insert(db(), "Z", 0));
  EXPECT_EQ(ids(db()), (std::vector<std::string>{"B", "Z", "a", "\xc3\xa9"}));
  std::vector<std::int64_t> ns;
  ASSERT_TRUE(db().query("SELECT n FROM notes ORDER BY n", {}, [&](const Row& r) { ns.push_back(r.int64(0)); }));
  EXPECT_EQ(ns, (std::vector<std::int64_t>{kMin, 0, 1, kMax}));
}

TEST_P(ReadModelDbContract, AFailedTransactionLeavesNothing) {
  create_notes(db());
  ASSERT_TRUE(insert(db(), "kept", 1));
  auto r = db().transaction("contract", [&](WriteTransaction& tx) -> Result<void> {
    const SqlValue params[] = {std::string_view("dropped"), std::int64_t{2}};
    const auto& d = db().dialect();
    if (auto r = tx.run("INSERT INTO notes (id, note, n) VALUES (" + d.param(1) + ", '', " + d.param(2) + ")", params);
        !r)
      return r;
    return fail(Errc::invalid_state, "the batch fails");
  });
  EXPECT_FALSE(r);
  EXPECT_EQ(ids(db()), std::vector<std::string>{"kept"});
  EXPECT_FALSE(insert(db(), "kept", 3)) << "a statement the database refuses fails its transaction";
  EXPECT_EQ(ids(db()), std::vector<std::string>{"kept"});
}

// Released, a projection is written again once claimed again (a database shared by other
// processes refuses its writes until then); releasing what is not held changes nothing.
TEST_P(ReadModelDbContract, AReleasedProjectionIsWrittenOnceClaimedAgain) {
  create_notes(db());
  ASSERT_TRUE(insert(db(), "before", 1));
  ASSERT_TRUE(db().release("contract"));
  ASSERT_TRUE(db().release("contract")) << "released twice";
  ASSERT_TRUE(db().release("never claimed"));
  if (db().shared()) {
    auto refused = insert(db(), "between", 2);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::unavailable);
  }
  auto claimed = db().claim("contract");
  ASSERT_TRUE(claimed && *claimed);
  ASSERT_TRUE(insert(db(), "after", 3));
  auto written = ids(db());
  EXPECT_TRUE(std::find(written.begin(), written.end(), "after") != written.end());
  EXPECT_TRUE(std::find(written.begin(), written.end(), "before") != written.end());
}

}  // namespace
}  // namespace orderflow::testing
