// Sales analytics: orders placed, confirmed and cancelled, and revenue (orders confirmed and
// not cancelled), per day and per product, by the time each order was placed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/projections/read_model_db.h"

namespace orderflow::app::projections {

struct SalesDay {
  std::string date;  // YYYY-MM-DD (UTC)
  std::int64_t orders = 0;
  std::int64_t revenue_cents = 0;
};

struct ProductSales {
  std::string product_id;
  std::int64_t quantity = 0;
  std::int64_t revenue_cents = 0;
};

struct Sales {
  std::int64_t orders_placed = 0, orders_confirmed = 0, orders_cancelled = 0, revenue_cents = 0;
  std::vector<SalesDay> by_day;            // oldest first
  std::vector<ProductSales> top_products;  // most units sold first, at most 10
};

// The projection's SQL in one database's dialect, with kGeneration suffixes.
struct SalesStatements {
  explicit SalesStatements(const es::SqlDialect& d);
  std::string orders_table, lines_table;
  // The queries; parameters: from_ms, to_ms.
  std::string totals, days, top;
};

class SalesProjection final : public TableProjection {
 public:
  explicit SalesProjection(es::ReadModelDb& db);
  // Orders placed in [from_ms, to_ms).
  Result<Sales> sales(std::int64_t from_ms, std::int64_t to_ms);

 private:
  SalesProjection(es::ReadModelDb& db, SalesStatements sql);
  std::unique_ptr<CopyWriter> writer(std::int64_t generation) override;

  const SalesStatements sql_;
};

}  // namespace orderflow::app::projections
