#include "app/projections/sales.h"

#include "codec/domain_codec.h"
#include "core/time.h"

namespace orderflow::app::projections {

namespace {

using namespace domain::order;
using es::OnRow;
using es::Row;
using es::SqlValue;
using es::WriteTransaction;

constexpr const char* kCounted = "CASE WHEN o.confirmed = 1 AND o.cancelled = 0 THEN o.total_cents ELSE 0 END";

// The orders placed in [?1, ?2).
std::string in_range(const es::SqlDialect& d) {
  return " FROM sales_orders{g} o WHERE o.placed_at_ms >= " + d.param(1) + " AND o.placed_at_ms < " + d.param(2);
}

// Each batch's rows in a few statements per table, written at its end in an order that
// needs no other: orders and their lines, then the flags of orders confirmed or cancelled
// (in this batch too, after they were placed).
class SalesWriter final : public CopyWriter {
 public:
  SalesWriter(const es::SqlDialect& d, std::int64_t generation)
      : orders_(
            [&d, generation](int n) {
              return insert(d, generation, "sales_orders{g} (order_id, placed_at_ms, day, total_cents)", n, 4);
            },
            4),
        lines_(
            [&d, generation](int n) {
              return insert(d, generation, "sales_lines{g} (order_id, line, product_id, quantity, revenue_cents)", n,
                            5);
            },
            5),
        confirmed_([&d, generation](int n) { return flag(d, generation, "confirmed", n); }, 1),
        cancelled_([&d, generation](int n) { return flag(d, generation, "cancelled", n); }, 1) {}

  Result<void> apply(WriteTransaction& tx, std::span<const es::RecordedEvent> events) override {
    for (const auto& e : events) {
      std::string order_id(e.stream_id.view().substr(sizeof("order-") - 1));
      if (e.type == OrderConfirmed::kType) {
        confirmed_.add({std::move(order_id)});
      } else if (e.type == OrderCancelled::kType) {
        cancelled_.add({std::move(order_id)});
      } else if (e.type == OrderPlaced::kType) {
        auto event = codec::decode_event<Event>(e.type, e.data);
        if (!event)
          return fail(event.error().code, "event at position " + to_string(e.position) + ": " + event.error().message);
        const auto& p = std::get<OrderPlaced>(*event);
        for (std::size_t i = 0; i < p.items.size(); ++i) {
          const auto& l = p.items[i];
          lines_.add({order_id, static_cast<std::int64_t>(i), l.product_id, l.quantity, l.line_total_cents});
        }
        orders_.add(
            {std::move(order_id), p.placed_at_ms, format_rfc3339_ms(p.placed_at_ms).substr(0, 10), p.total_cents});
      }
    }
    for (auto* rows : {&orders_, &lines_, &confirmed_, &cancelled_}) OF_RETURN_IF_ERROR(rows->write(tx));
    return {};
  }

 private:
  static std::string insert(const es::SqlDialect& d, std::int64_t generation, const std::string& into, int rows,
                            int columns) {
    return with_generation(
        "INSERT INTO " + into + " VALUES " + values_rows(d, rows, columns) + " ON CONFLICT DO NOTHING", generation);
  }
  static std::string flag(const es::SqlDialect& d, std::int64_t generation, const std::string& column, int rows) {
    return with_generation(
        "UPDATE sales_orders{g} SET " + column + " = 1 WHERE order_id IN (" + d.params(1, rows) + ")", generation);
  }

  BatchedRows orders_, lines_, confirmed_, cancelled_;
};

}  // namespace

SalesStatements::SalesStatements(const es::SqlDialect& d)
    : orders_table("CREATE TABLE IF NOT EXISTS sales_orders{g} (order_id " + d.text + " PRIMARY KEY, placed_at_ms " +
                   d.integer + " NOT NULL, day " + d.text + " NOT NULL, total_cents " + d.integer +
                   " NOT NULL, confirmed " + d.integer + " NOT NULL DEFAULT 0, cancelled " + d.integer +
                   " NOT NULL DEFAULT 0)" + d.table_options),
      lines_table("CREATE TABLE IF NOT EXISTS sales_lines{g} (order_id " + d.text + " NOT NULL, line " + d.integer +
                  " NOT NULL, product_id " + d.text + " NOT NULL, quantity " + d.integer + " NOT NULL, revenue_cents " +
                  d.integer + " NOT NULL, PRIMARY KEY (order_id, line))" + d.table_options),
      totals("SELECT count(*), coalesce(sum(o.confirmed), 0), coalesce(sum(o.cancelled), 0), coalesce(sum(" +
             std::string(kCounted) + "), 0)" + in_range(d)),
      days("SELECT o.day, count(*), sum(" + std::string(kCounted) + ")" + in_range(d) + " GROUP BY o.day ORDER BY o.day"),
      top("SELECT l.product_id, sum(l.quantity), sum(l.revenue_cents) FROM sales_lines{g} l "
          "JOIN sales_orders{g} o ON o.order_id = l.order_id WHERE o.placed_at_ms >= " + d.param(1) +
          " AND o.placed_at_ms < " + d.param(2) + " AND o.confirmed = 1 AND o.cancelled = 0 "
          "GROUP BY l.product_id ORDER BY 2 DESC, 1 LIMIT 10") {}

SalesProjection::SalesProjection(es::ReadModelDb& db)
    : SalesProjection(db, SalesStatements(db.dialect())) {}

SalesProjection::SalesProjection(es::ReadModelDb& db, SalesStatements sql)
    : TableProjection(
          db, "sales", es::EventFilter{{"order"}, {OrderPlaced::kType, OrderConfirmed::kType, OrderCancelled::kType}, {}},
          {sql.orders_table, "CREATE INDEX IF NOT EXISTS sales_orders_by_time{g} ON sales_orders{g} (placed_at_ms)",
           sql.lines_table},
          {"sales_orders{g}", "sales_lines{g}"}),
      sql_(std::move(sql)) {}

std::unique_ptr<CopyWriter> SalesProjection::writer(std::int64_t generation) {
  return std::make_unique<SalesWriter>(db_.dialect(), generation);
}

Result<Sales> SalesProjection::sales(std::int64_t from_ms, std::int64_t to_ms) {
  const SqlValue params[] = {from_ms, to_ms};
  return read([&](std::int64_t g) -> Result<Sales> {
    Sales out;
    auto run = [&](const std::string& sql, const OnRow& on_row) {
      return db_.query(with_generation(sql, g), params, on_row);
    };
    OF_RETURN_IF_ERROR(run(sql_.totals, [&](const Row& s) {
      out.orders_placed = s.int64(0);
      out.orders_confirmed = s.int64(1);
      out.orders_cancelled = s.int64(2);
      out.revenue_cents = s.int64(3);
    }));
    OF_RETURN_IF_ERROR(run(sql_.days, [&](const Row& s) {
      out.by_day.push_back(SalesDay{std::string(s.text(0)), s.int64(1), s.int64(2)});
    }));
    OF_RETURN_IF_ERROR(run(sql_.top, [&](const Row& s) {
      out.top_products.push_back(ProductSales{std::string(s.text(0)), s.int64(1), s.int64(2)});
    }));
    return out;
  });
}

}  // namespace orderflow::app::projections
