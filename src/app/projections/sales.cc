#include "app/projections/sales.h"

#include "codec/domain_codec.h"
#include "core/time.h"

namespace orderflow::app::projections {

namespace {

using namespace domain::order;

constexpr const char* kCounted = "CASE WHEN o.confirmed = 1 AND o.cancelled = 0 THEN o.total_cents ELSE 0 END";

class SalesWriter final : public CopyWriter {
 public:
  SalesWriter(sqlite::Statement order, sqlite::Statement line, sqlite::Statement confirmed,
              sqlite::Statement cancelled)
      : order_(std::move(order)), line_(std::move(line)), confirmed_(std::move(confirmed)),
        cancelled_(std::move(cancelled)) {}

  Result<void> apply(std::span<const es::RecordedEvent> events) override {
    for (const auto& e : events) {
      const auto order_id = std::string_view(e.stream_id).substr(sizeof("order-") - 1);
      Result<void> r;
      if (e.type == OrderConfirmed::kType) {
        r = confirmed_.bind(1, order_id).run();
      } else if (e.type == OrderCancelled::kType) {
        r = cancelled_.bind(1, order_id).run();
      } else if (e.type == OrderPlaced::kType) {
        auto event = codec::decode_event<Event>(e.type, e.data);
        if (!event)
          return fail(event.error().code,
                      "event at position " + std::to_string(e.position) + ": " + event.error().message);
        r = placed(order_id, std::get<OrderPlaced>(*event));
      }
      if (!r) return r;
    }
    return {};
  }

 private:
  Result<void> placed(std::string_view order_id, const OrderPlaced& p) {
    const auto day = format_rfc3339_ms(p.placed_at_ms).substr(0, 10);
    if (auto r = order_.bind(1, order_id).bind(2, p.placed_at_ms).bind(3, day).bind(4, p.total_cents).run(); !r)
      return r;
    for (std::size_t i = 0; i < p.items.size(); ++i) {
      const auto& l = p.items[i];
      if (auto r = line_.bind(1, order_id)
                       .bind(2, static_cast<std::int64_t>(i))
                       .bind(3, l.product_id)
                       .bind(4, l.quantity)
                       .bind(5, l.line_total_cents)
                       .run();
          !r)
        return r;
    }
    return {};
  }

  sqlite::Statement order_, line_, confirmed_, cancelled_;
};

}  // namespace

SalesProjection::SalesProjection(ReadModelDb& db)
    : SqliteProjection(
          db, "sales", es::EventFilter{{"order"}, {OrderPlaced::kType, OrderConfirmed::kType, OrderCancelled::kType}, ""},
          {"CREATE TABLE IF NOT EXISTS sales_orders$ (order_id TEXT PRIMARY KEY, placed_at_ms INTEGER NOT NULL, "
           "day TEXT NOT NULL, total_cents INTEGER NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0, "
           "cancelled INTEGER NOT NULL DEFAULT 0) STRICT",
           "CREATE INDEX IF NOT EXISTS sales_orders_by_time$ ON sales_orders$ (placed_at_ms)",
           "CREATE TABLE IF NOT EXISTS sales_lines$ (order_id TEXT NOT NULL, line INTEGER NOT NULL, "
           "product_id TEXT NOT NULL, quantity INTEGER NOT NULL, revenue_cents INTEGER NOT NULL, "
           "PRIMARY KEY (order_id, line)) STRICT"},
          {"sales_orders$", "sales_lines$"}) {}

Result<std::unique_ptr<CopyWriter>> SalesProjection::writer(sqlite::Database& db, std::int64_t generation) {
  std::vector<sqlite::Statement> s;
  for (const char* sql :
       {"INSERT OR IGNORE INTO sales_orders$ (order_id, placed_at_ms, day, total_cents) VALUES (?1, ?2, ?3, ?4)",
        "INSERT OR IGNORE INTO sales_lines$ (order_id, line, product_id, quantity, revenue_cents) "
        "VALUES (?1, ?2, ?3, ?4, ?5)",
        "UPDATE sales_orders$ SET confirmed = 1 WHERE order_id = ?1",
        "UPDATE sales_orders$ SET cancelled = 1 WHERE order_id = ?1"}) {
    auto stmt = db.prepare(with_generation(sql, generation));
    if (!stmt) return fail(stmt.error());
    s.push_back(std::move(*stmt));
  }
  return std::unique_ptr<CopyWriter>(
      new SalesWriter(std::move(s[0]), std::move(s[1]), std::move(s[2]), std::move(s[3])));
}

Result<Sales> SalesProjection::sales(std::int64_t from_ms, std::int64_t to_ms) {
  return read([&](ReadModelDb::Reader& r, std::int64_t g) -> Result<Sales> {
    Sales out;
    auto run = [&](const std::string& sql, auto on_row) -> Result<void> {
      auto s = r.prepare(with_generation(sql, g));
      if (!s) return fail(s.error());
      sqlite::ResetOnExit reset(**s);
      (*s)->bind(1, from_ms).bind(2, to_ms);
      for (;;) {
        auto row = (*s)->step();
        if (!row) return fail(row.error());
        if (!*row) return {};
        on_row(**s);
      }
    };
    const std::string in_range = " FROM sales_orders$ o WHERE o.placed_at_ms >= ?1 AND o.placed_at_ms < ?2";
    auto totals = run("SELECT count(*), coalesce(sum(o.confirmed), 0), coalesce(sum(o.cancelled), 0), "
                      "coalesce(sum(" + std::string(kCounted) + "), 0)" + in_range,
                      [&](sqlite::Statement& s) {
                        out.orders_placed = s.int64(0);
                        out.orders_confirmed = s.int64(1);
                        out.orders_cancelled = s.int64(2);
                        out.revenue_cents = s.int64(3);
                      });
    if (!totals) return fail(totals.error());
    auto days = run("SELECT o.day, count(*), sum(" + std::string(kCounted) + ")" + in_range +
                        " GROUP BY o.day ORDER BY o.day",
                    [&](sqlite::Statement& s) {
                      out.by_day.push_back(SalesDay{std::string(s.text(0)), s.int64(1), s.int64(2)});
                    });
    if (!days) return fail(days.error());
    auto top = run("SELECT l.product_id, sum(l.quantity), sum(l.revenue_cents) FROM sales_lines$ l "
                   "JOIN sales_orders$ o ON o.order_id = l.order_id WHERE o.placed_at_ms >= ?1 AND "
                   "o.placed_at_ms < ?2 AND o.confirmed = 1 AND o.cancelled = 0 "
                   "GROUP BY l.product_id ORDER BY 2 DESC, 1 LIMIT 10",
                   [&](sqlite::Statement& s) {
                     out.top_products.push_back(ProductSales{std::string(s.text(0)), s.int64(1), s.int64(2)});
                   });
    if (!top) return fail(top.error());
    return out;
  });
}

}  // namespace orderflow::app::projections
