// SqliteReadModelDb runs the ReadModelDb contract suite.
#include "store/sqlite/sqlite_read_model_db.h"

#include <gtest/gtest.h>

#include "es/read_model_db_contract.h"
#include "support/temp_dir.h"

namespace orderflow::testing {
namespace {

class SqliteHarness final : public ReadModelDbHarness {
 public:
  SqliteHarness() {
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
                             [] { return std::unique_ptr<ReadModelDbHarness>(new SqliteHarness()); }}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace orderflow::testing
