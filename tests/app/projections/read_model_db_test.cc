#include "app/projections/read_model_db.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace orderflow::app::projections
