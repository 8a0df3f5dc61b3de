#include "app/projections/read_model_db.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace orderflow::app::projections {
namespace {

TEST(WithGeneration, PutsTheSuffixWhereTheMarkerIsAndNowhereElse) {
  EXPECT_EQ(with_generation("CREATE INDEX IF NOT EXISTS orders_by_status{g} ON orders{g} (status)", 3),
            "CREATE INDEX IF NOT EXISTS orders_by_status_g3 ON orders_g3 (status)");
  // PostgreSQL's parameters, SQLite's, and string literals stay as written.
  EXPECT_EQ(with_generation("SELECT 'a {g} $1 ?1', n FROM t{g} WHERE id = $1 AND note = ?2", 12),
            "SELECT 'a {g} $1 ?1', n FROM t_g12 WHERE id = $1 AND note = ?2");
  // A quote written twice inside a literal does not end it.
  EXPECT_EQ(with_generation("SELECT 'it''s {g}' FROM t{g} WHERE x = '' AND y = '{g}'", 1),
            "SELECT 'it''s {g}' FROM t_g1 WHERE x = '' AND y = '{g}'");
}

// What a transaction was asked to run: each statement's text and parameters.
class RecordingTransaction final : public es::WriteTransaction {
 public:
  struct Statement {
    std::string sql;
    std::vector<std::string> params;  // integers as their digits
  };
  Result<void> run(const std::string& sql, std::span<const es::SqlValue> params) override {
    auto& s = statements.emplace_back(Statement{sql, {}});
    for (const auto& p : params)
      s.params.push_back(std::holds_alternative<std::int64_t>(p) ? std::to_string(std::get<std::int64_t>(p))
                                                                 : std::string(std::get<std::string_view>(p)));
    return {};
  }
  Result<void> query(const std::string&, std::span<const es::SqlValue>, const es::OnRow&) override {
    return fail(Errc::internal, "not asked");
  }
  std::vector<Statement> statements;
};

const es::SqlDialect kPostgres{'$', "BIGINT", "TEXT", ""};

TEST(BatchedRows, WritesRowsInStatementsOfPowersOfTwoRowsInTheOrderAdded) {
  int shapes_made = 0;
  BatchedRows rows(
      [&](int n) {
        ++shapes_made;
        return "INSERT INTO t (id, n) VALUES " + values_rows(kPostgres, n, 2);
      },
      2);
  for (int i = 0; i < 205; ++i) rows.add({"id" + std::to_string(i), std::int64_t{i}});
  RecordingTransaction tx;
  ASSERT_TRUE(rows.write(tx));
  std::vector<std::size_t> sizes;
  std::vector<std::string> params;
  for (const auto& s : tx.statements) {
    sizes.push_back(s.params.size() / 2);
    params.insert(params.end(), s.params.begin(), s.params.end());
  }
  // 205 = 3 x 64 + 8 + 4 + 1: never more than kMostRows in one statement.
  EXPECT_EQ(sizes, (std::vector<std::size_t>{64, 64, 64, 8, 4, 1}));
  ASSERT_EQ(params.size(), 410u);
  for (int i = 0; i < 205; ++i) {
    EXPECT_EQ(params[static_cast<std::size_t>(2 * i)], "id" + std::to_string(i));
    EXPECT_EQ(params[static_cast<std::size_t>(2 * i + 1)], std::to_string(i));
  }
  EXPECT_EQ(tx.statements[3].sql,
            "INSERT INTO t (id, n) VALUES ($1, $2), ($3, $4), ($5, $6), ($7, $8), ($9, $10), ($11, $12), ($13, $14), "
            "($15, $16)");
  EXPECT_EQ(shapes_made, 4) << "each shape is spelled once";

  EXPECT_TRUE(rows.empty()) << "written rows are forgotten";
  RecordingTransaction again;
  ASSERT_TRUE(rows.write(again));
  EXPECT_TRUE(again.statements.empty());
}

}  // namespace
}  // namespace orderflow::app::projections
