#include "app/projections/sales.h"

#include "codec/domain_codec.h"
#include "core/time.h"

namespace orderflow::app::projections {

namespace {

using namespace domain::order;

constexpr const char* kCounted = "CASE WHEN o.confirmed = 1 AND o.cancelled = 0 THEN o.total_cents ELSE 0 END";

class SalesWriter final : public CopyWriter {
 public:
  explicit SalesWriter(std::int64_t generation)
      : order_(with_generation("INSERT INTO sales_orders$ (order_id, placed_at_ms, day, total_cents) "
                               "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                               generation)),
        line_(with_generation("INSERT INTO sales_lines$ (order_id, line, product_id, quantity, revenue_cents) "
                              "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                              generation)),
        confirmed_(with_generation("UPDATE sales_orders$ SET confirmed = 1 WHERE order_id = ?1", generation)),
        cancelled_(with_generation("UPDATE sales_orders$ SET cancelled = 1 WHERE order_id = ?1", generation)) {}

  Result<void> apply(WriteTransaction& tx, std::span<const es::RecordedEvent> events) override {
    for (const auto& e : events) {
      const SqlValue order_id[] = {std::string_view(e.stream_id).substr(sizeof("order-") - 1)};
      Result<void> r;
      if (e.type == OrderConfirmed::kType) {
        r = tx.run(confirmed_, order_id);
      } else if (e.type == OrderCancelled::kType) {
        r = tx.run(cancelled_, order_id);
      } else if (e.type == OrderPlaced::kType) {
        auto event = codec::decode_event<Event>(e.type, e.data);
        if (!event)
          return fail(event.error().code,
                      "event at position " + to_string(e.position) + ": " + event.error().message);
        r = placed(tx, order_id[0], std::get<OrderPlaced>(*event));
      }
      if (!r) return r;
    }
    return {};
  }

 private:
  Result<void> placed(WriteTransaction& tx, const SqlValue& order_id, const OrderPlaced& p) {
    const auto day = format_rfc3339_ms(p.placed_at_ms).substr(0, 10);
    const SqlValue order[] = {order_id, p.placed_at_ms, day, p.total_cents};
    if (auto r = tx.run(order_, order); !r) return r;
    for (std::size_t i = 0; i < p.items.size(); ++i) {
      const auto& l = p.items[i];
      const SqlValue line[] = {order_id, static_cast<std::int64_t>(i), l.product_id, l.quantity, l.line_total_cents};
      if (auto r = tx.run(line_, line); !r) return r;
    }
    return {};
  }

  const std::string order_, line_, confirmed_, cancelled_;
};

}  // namespace

SalesProjection::SalesProjection(ReadModelDb& db)
    : TableProjection(
          db, "sales", es::EventFilter{{"order"}, {OrderPlaced::kType, OrderConfirmed::kType, OrderCancelled::kType}, ""},
          {"CREATE TABLE IF NOT EXISTS sales_orders$ (order_id TEXT PRIMARY KEY, placed_at_ms INTEGER NOT NULL, "
           "day TEXT NOT NULL, total_cents INTEGER NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0, "
           "cancelled INTEGER NOT NULL DEFAULT 0) STRICT",
           "CREATE INDEX IF NOT EXISTS sales_orders_by_time$ ON sales_orders$ (placed_at_ms)",
           "CREATE TABLE IF NOT EXISTS sales_lines$ (order_id TEXT NOT NULL, line INTEGER NOT NULL, "
           "product_id TEXT NOT NULL, quantity INTEGER NOT NULL, revenue_cents INTEGER NOT NULL, "
           "PRIMARY KEY (order_id, line)) STRICT"},
          {"sales_orders$", "sales_lines$"}) {}

std::unique_ptr<CopyWriter> SalesProjection::writer(std::int64_t generation) {
  return std::make_unique<SalesWriter>(generation);
}

Result<Sales> SalesProjection::sales(std::int64_t from_ms, std::int64_t to_ms) {
  const SqlValue params[] = {from_ms, to_ms};
  return read([&](std::int64_t g) -> Result<Sales> {
    Sales out;
    auto run = [&](const std::string& sql, const OnRow& on_row) {
      return db_.query(with_generation(sql, g), params, on_row);
    };
    const std::string in_range = " FROM sales_orders$ o WHERE o.placed_at_ms >= ?1 AND o.placed_at_ms < ?2";
    auto totals = run("SELECT count(*), coalesce(sum(o.confirmed), 0), coalesce(sum(o.cancelled), 0), "
                      "coalesce(sum(" + std::string(kCounted) + "), 0)" + in_range,
                      [&](const Row& s) {
                        out.orders_placed = s.int64(0);
                        out.orders_confirmed = s.int64(1);
                        out.orders_cancelled = s.int64(2);
                        out.revenue_cents = s.int64(3);
                      });
    if (!totals) return fail(totals.error());
    auto days = run("SELECT o.day, count(*), sum(" + std::string(kCounted) + ")" + in_range +
                        " GROUP BY o.day ORDER BY o.day",
                    [&](const Row& s) {
                      out.by_day.push_back(SalesDay{std::string(s.text(0)), s.int64(1), s.int64(2)});
                    });
    if (!days) return fail(days.error());
    auto top = run("SELECT l.product_id, sum(l.quantity), sum(l.revenue_cents) FROM sales_lines$ l "
                   "JOIN sales_orders$ o ON o.order_id = l.order_id WHERE o.placed_at_ms >= ?1 AND "
                   "o.placed_at_ms < ?2 AND o.confirmed = 1 AND o.cancelled = 0 "
                   "GROUP BY l.product_id ORDER BY 2 DESC, 1 LIMIT 10",
                   [&](const Row& s) {
                     out.top_products.push_back(ProductSales{std::string(s.text(0)), s.int64(1), s.int64(2)});
                   });
    if (!top) return fail(top.error());
    return out;
  });
}

}  // namespace orderflow::app::projections
