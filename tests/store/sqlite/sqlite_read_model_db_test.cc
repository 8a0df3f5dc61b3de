// SqliteReadModelDb runs the ReadModelDb contract suite.
#include "store/sqlite/sqlite_read_model_db.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace orderflow::testing
