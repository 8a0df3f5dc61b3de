// The read-side tests run on every read-model database: SQLite (a file of its own) and
// PostgreSQL (a scratch schema on ORDERFLOW_TEST_PG; skipped without it).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

#include "store/postgres/postgres_read_model_db.h"
#include "store/postgres/test_database.h"
#include "store/sqlite/sqlite_read_model_db.h"
#include "support/temp_dir.h"

namespace orderflow::testing {

enum class ReadModelBackend { sqlite, postgres };

inline std::string backend_name(const ::testing::TestParamInfo<ReadModelBackend>& info) {
  return info.param == ReadModelBackend::sqlite ? "Sqlite" : "Postgres";
}
inline void PrintTo(ReadModelBackend backend, std::ostream* os) {
  *os << (backend == ReadModelBackend::sqlite ? "SQLite" : "PostgreSQL");
}

// One test's read-model database. Each open() connects anew, as another process would.
class ReadModelPlace {
 public:
  explicit ReadModelPlace(ReadModelBackend backend) : backend_(backend) {}

  // Why the backend cannot run here, or empty.
  std::string unavailable() const {
    if (backend_ == ReadModelBackend::postgres && !test_server())
      return "ORDERFLOW_TEST_PG is not set (scripts/pg-test-server.sh sets it)";
    return "";
  }

  std::unique_ptr<es::ReadModelDb> open() const {
    if (backend_ == ReadModelBackend::sqlite) {
      auto db = sqlite::SqliteReadModelDb::open(dir_.file("readmodels.db"));
      if (!db) throw std::runtime_error(db.error().message);
      return std::move(*db);
    }
    auto db = postgres::PostgresReadModelDb::open({.conninfo = test_server(), .schema = schema_.name()});
    if (!db) throw std::runtime_error(db.error().message);
    return std::move(*db);
  }

  // The names of the secondary indexes, each without its generation suffix.
  std::multiset<std::string> index_kinds() const {
    std::multiset<std::string> kinds;
    auto add = [&](std::string name) { kinds.insert(name.substr(0, name.rfind("_g"))); };
    if (backend_ == ReadModelBackend::sqlite) {
      auto db = std::move(*sqlite::Database::open(dir_.file("readmodels.db"), true));
      auto indexes = std::move(*db.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL"));
      while (*indexes.step()) add(std::string(indexes.text(0)));
      return kinds;
    }
    auto conn = schema_.connect();
    auto rows = conn.query({"SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname NOT LIKE '%_pkey'",
                            {schema_.name()}});
    if (!rows) throw std::runtime_error(rows.error().message);
    for (int i = 0; i < rows->rows(); ++i) add(std::string(rows->text(i, 0)));
    return kinds;
  }

  const TempDir& dir() const { return dir_; }
  // PostgreSQL: the scratch schema, and a connection of our own into it.
  const std::string& schema() const { return schema_.name(); }
  postgres::Connection connect() const { return schema_.connect(); }

 private:
  ReadModelBackend backend_;
  TempDir dir_;
  TestSchema schema_;
};

}  // namespace orderflow::testing
