// SqliteReadModelDb runs the ReadModelDb contract suite.
#include "store/sqlite/sqlite_read_model_db.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "es/read_model_db_contract.h"
#include "support/temp_dir.h"

namespace orderflow::testing {
namespace {

class SqliteReadModelHarness final : public ReadModelDbHarness {
 public:
  SqliteReadModelHarness() {
    auto db = sqlite::SqliteReadModelDb::open(dir_.file("readmodels.db"));
    if (!db) throw std::runtime_error(db.error().message);
    db_ = std::move(*db);
  }
  es::ReadModelDb& db() override { return *db_; }

 private:
  TempDir dir_;
  std::unique_ptr<sqlite::SqliteReadModelDb> db_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, ReadModelDbContract,
                         ::testing::Values(ReadModelDbContractParam{
                             "sqlite", [] { return std::string(); },
                             [] { return std::unique_ptr<ReadModelDbHarness>(new SqliteReadModelHarness()); }}),
                         [](const auto& info) { return info.param.name; });

// A process fed from a bus acknowledges each batch after its commit: each commit is synced
// (FULL); the others' are not (NORMAL: a power cut may lose the last batches, applied again
// from the log).
TEST(SqliteReadModelDb, CommitsAreSyncedOnlyWhenAsked) {
  for (const bool durable : {false, true}) {
    TempDir dir;
    auto db = sqlite::SqliteReadModelDb::open(dir.file("readmodels.db"), durable);
    ASSERT_TRUE(db) << db.error().message;
    std::int64_t synchronous = -1;
    ASSERT_TRUE((*db)->transaction("orders", [&](es::WriteTransaction& tx) {
      return tx.query("PRAGMA synchronous", {}, [&](const es::Row& row) { synchronous = row.int64(0); });
    }));
    EXPECT_EQ(synchronous, durable ? 2 : 1) << "2: FULL, 1: NORMAL";
  }
}

// A multi-row statement inside a projection's transaction keeps a statement journal (the
// pages it changes, to undo it alone if it fails); past 64 KiB SQLite would spill that to a
// temporary file, created and deleted again in every such transaction. The writer keeps it
// in memory (temp_store = MEMORY: 2).
TEST(SqliteReadModelDb, StatementJournalsStayInMemory) {
  TempDir dir;
  auto db = sqlite::SqliteReadModelDb::open(dir.file("readmodels.db"));
  ASSERT_TRUE(db) << db.error().message;
  std::int64_t temp_store = -1;
  ASSERT_TRUE((*db)->transaction("orders", [&](es::WriteTransaction& tx) {
    return tx.query("PRAGMA temp_store", {}, [&](const es::Row& row) { temp_store = row.int64(0); });
  }));
  EXPECT_EQ(temp_store, 2) << "0: the build's default (a file), 1: FILE, 2: MEMORY";
}

// Read-only (verify on a full or read-only disk): queries answer from the file as it is, no
// projection is claimed (a runner follows each where it stands), a transaction is refused,
// and nothing is written, in the file or beside it.
TEST(SqliteReadModelDb, AReadOnlyOpenAnswersQueriesAndWritesNothing) {
  TempDir dir;
  const auto path = dir.file("readmodels.db");
  {
    auto db = sqlite::SqliteReadModelDb::open(path);
    ASSERT_TRUE(db) << db.error().message;
    const std::string create[] = {"CREATE TABLE IF NOT EXISTS t (x INTEGER) STRICT"};
    ASSERT_TRUE((*db)->create_tables(create));
    ASSERT_TRUE((*db)->transaction("t", [](es::WriteTransaction& tx) { return tx.run("INSERT INTO t VALUES (7)"); }));
  }
  ASSERT_FALSE(std::filesystem::exists(path + "-wal"));
  auto db = sqlite::SqliteReadModelDb::open_read_only(path);
  ASSERT_TRUE(db) << db.error().message;
  const std::string create[] = {"CREATE TABLE IF NOT EXISTS t (x INTEGER) STRICT"};
  EXPECT_TRUE((*db)->create_tables(create)) << "the tables are there: nothing to write";
  std::int64_t x = 0;
  ASSERT_TRUE((*db)->query("SELECT x FROM t", {}, [&](const es::Row& row) { x = row.int64(0); }));
  EXPECT_EQ(x, 7);
  auto claimed = (*db)->claim("t");
  ASSERT_TRUE(claimed);
  EXPECT_FALSE(*claimed);
  auto written = (*db)->transaction("t", [](es::WriteTransaction& tx) { return tx.run("INSERT INTO t VALUES (8)"); });
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, Errc::unavailable);
  const std::string missing[] = {"CREATE TABLE IF NOT EXISTS u (x INTEGER) STRICT"};
  EXPECT_FALSE((*db)->create_tables(missing));
  db->reset();
  EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
  EXPECT_FALSE(std::filesystem::exists(path + "-shm"));
}

}  // namespace
}  // namespace orderflow::testing
