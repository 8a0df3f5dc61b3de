#include "app/projections/entities.h"

#include <array>
#include <bit>
#include <charconv>
#include <unordered_map>
#include <unordered_set>

#include "app/aggregates.h"
#include "app/stream_fold.h"
#include "app/projections/documents.h"
#include "codec/domain_codec.h"

namespace orderflow::app::projections {

namespace {

using es::Row;
using es::SqlValue;
using es::WriteTransaction;

// The columns every entity table starts with: id, version, doc (the API document),
// first_position (of the stream's first event), then `extra` text columns. The folded
// state is not stored: see FoldWriter.
std::string entity_table(const es::SqlDialect& d, const std::string& table, const std::vector<std::string>& extra) {
  auto sql = "CREATE TABLE IF NOT EXISTS " + table + "{g} (id " + d.text + " PRIMARY KEY, version " + d.integer +
             " NOT NULL, doc " + d.text + " NOT NULL, first_position " + d.integer + " NOT NULL";
  for (const auto& column : extra) sql += ", " + column + " " + d.text + " NOT NULL";
  return sql + ")" + d.table_options;
}

es::EventFilter category(const char* name) {
  es::EventFilter f;
  f.categories.emplace_back(name);
  return f;
}

// Folds a batch per stream: each entity touched is evolved by every event of the batch and
// written once. Events at or below an entity's stored version are skipped, so a batch
// delivered again changes nothing; an event past the next version is refused (corrupt):
// a projection's filter takes whole streams, so a stream's events come without gaps.
//
// Folded states live in memory only (this writer is its copy's only writer): storing them
// cost an encoding per save that grows with the entity (a product's reservations). An
// entity not in memory is folded again from the event store through the version its row
// records, which gives the state the row was rendered from, because stored events never
// change. The memory holds committed states only: a rolled-back batch forgets them all.
//
// Memory budget: at most 2 x kCacheLimit states (the entities of the newest batches; see
// cache_ and older_); no aggregate's state grows with its history.
template <class A>
class FoldWriter final : public CopyWriter {
 public:
  struct Entry {
    typename A::State state = A::decider.initial_state();
    es::StreamVersion version = es::kNoStream;
    es::Position first_position{0};
    bool changed = false;  // by the batch in hand
  };
  // The entity's row.
  using RowOf = std::function<std::vector<BatchedRows::Value>(const std::string& id, const Entry&)>;
  // One event's row in a table beside the entities' (the account ledger), if it has one.
  using EventRow = std::function<std::optional<std::vector<BatchedRows::Value>>(
      const std::string& id, const es::RecordedEvent&, const typename A::Event&)>;

  // `table`: the copy's table (its name with the generation suffix), in a database of
  // dialect `d`; `rows` writes its rows (row_of), `event_rows` those of event_row.
  FoldWriter(es::EventStore& store, const es::SqlDialect& d, std::string table, BatchedRows rows, RowOf row_of,
             std::optional<BatchedRows> event_rows = std::nullopt, EventRow event_row = nullptr)
      : store_(store), dialect_(d), table_(std::move(table)), rows_(std::move(rows)), row_of_(std::move(row_of)),
        event_rows_(std::move(event_rows)), event_row_(std::move(event_row)) {}

  Result<void> apply(WriteTransaction& tx, std::span<const es::RecordedEvent> events) override {
    const std::size_t prefix = std::string_view(A::category).size() + 1;
    // The states of entities not touched lately go: older_ was filled before cache_.
    if (cache_.size() > kCacheLimit) older_ = std::exchange(cache_, {});
    for (std::size_t i = 0; i < events.size(); ++i) {
      const auto& e = events[i];
      auto [it, fresh] = cache_.try_emplace(e.stream_id.str().substr(prefix));
      if (fresh)
        if (auto old = older_.find(it->first); old != older_.end()) {
          it->second = std::move(old->second);
          older_.erase(old);
          fresh = false;
        }
      // A stream's first event has no row to load: its copy has not applied it (the copy
      // passes on only events past its position), so no batch has written one.
      if (fresh && e.version > 0) {
        cache_.erase(it);
        if (auto r = load(tx, events.subspan(i), prefix); !r) return r;
        it = cache_.find(e.stream_id.str().substr(prefix));
      }
      auto& entry = it->second;
      if (e.version <= entry.version) continue;
      // Folding across a missing version would render a state no fold of the store has.
      if (e.version != entry.version + 1)
        return fail(Errc::corrupt, "event " + to_string(e.version) + " of " + e.stream_id.str() + " at position " +
                                       to_string(e.position) + " comes after version " + to_string(entry.version) +
                                       " in the read model: the versions between them were never applied");
      auto event = codec::decode_event<typename A::Event>(e.type, e.data);
      if (!event)
        return fail(event.error().code, "event at position " + to_string(e.position) + " (" + e.type +
                                            " of " + e.stream_id.str() + "): " + event.error().message);
      entry.state = A::decider.evolve(std::move(entry.state), *event);
      entry.version = e.version;
      if (entry.first_position == 0) entry.first_position = e.position;
      if (!entry.changed) changed_.push_back(&*it);
      entry.changed = true;
      if (event_row_)
        if (auto row = event_row_(it->first, e, *event)) event_rows_->add(std::move(*row));
    }
    for (auto* changed : changed_) {
      rows_.add(row_of_(changed->first, changed->second));
      changed->second.changed = false;
    }
    changed_.clear();
    OF_RETURN_IF_ERROR(rows_.write(tx));
    if (event_rows_) OF_RETURN_IF_ERROR(event_rows_->write(tx));
    return {};
  }

  void rolled_back() override {
    cache_.clear();
    older_.clear();
    changed_.clear();
  }

 private:
  // Brings into memory, as their rows record them, the entities of `events` (the rest of
  // the batch, from an entity not in memory on) that are not in memory and whose first
  // event here is not their stream's first: rows in one query per kLoadChunk entities (on
  // PostgreSQL a round trip each), states folded again from the store.
  Result<void> load(WriteTransaction& tx, std::span<const es::RecordedEvent> events, std::size_t prefix) {
    std::vector<std::string> ids;
    std::unordered_set<std::string_view> seen;
    for (const auto& e : events) {
      const auto id = e.stream_id.view().substr(prefix);
      if (seen.insert(id).second && e.version > 0 && !cache_.contains(std::string(id)) &&
          !older_.contains(std::string(id)))
        ids.emplace_back(id);
    }
    for (std::size_t from = 0; from < ids.size(); from += kLoadChunk) {
      const auto chunk = std::span(ids).subspan(from, std::min(kLoadChunk, ids.size() - from));
      std::unordered_map<std::string, std::pair<es::StreamVersion, es::Position>> rows;
      if (auto r = tx.query(load_sql(chunk.size()), padded(chunk),
                            [&](const Row& row) {
                              rows.try_emplace(std::string(row.text(0)), row.int64(1), row.int64(2));
                            });
          !r)
        return r;
      for (const auto& id : chunk) {
        Entry entry;
        if (auto row = rows.find(id); row != rows.end()) {
          const auto [version, first_position] = row->second;
          OF_ASSIGN_OR_RETURN(
              auto folded, fold_stream<A>(store_, id, Loaded<A>{A::decider.initial_state(), es::kNoStream}, version));
          if (folded.version != version)
            return fail(Errc::corrupt, stream_of<A>(id).str() + " ends before version " + to_string(version) +
                                           ", which its read model has applied");
          entry.state = std::move(folded.state);
          entry.version = version;
          entry.first_position = first_position;
        }
        cache_.emplace(id, std::move(entry));
      }
    }
    return {};
  }

  // The rows of `count` ids, padded up to a power of two (repeating the last id), so that
  // few distinct statements are ever prepared.
  static std::size_t padded_size(std::size_t count) { return std::bit_ceil(count); }
  static std::vector<SqlValue> padded(std::span<const std::string> ids) {
    std::vector<SqlValue> params(ids.begin(), ids.end());
    const SqlValue last = params.back();
    params.resize(padded_size(ids.size()), last);
    return params;
  }
  const std::string& load_sql(std::size_t count) {
    auto& sql = load_sql_[std::countr_zero(padded_size(count))];
    if (sql.empty())
      sql = "SELECT id, version, first_position FROM " + table_ + " WHERE id IN (" +
            dialect_.params(1, static_cast<int>(padded_size(count))) + ")";
    return sql;
  }

  static constexpr std::size_t kLoadChunk = 512;
  // An order's state is ~1 KB: 2 x 4096 of them ~8 MB. 4096 entities are a few seconds of
  // new orders at 1.5k/s, longer than an order's saga mostly takes, so its next events
  // find it in memory; one not found is folded again from the store (a few events).
  static constexpr std::size_t kCacheLimit = 4096;

  es::EventStore& store_;
  const es::SqlDialect& dialect_;
  const std::string table_;
  std::array<std::string, std::bit_width(kLoadChunk)> load_sql_;  // by log2 of the ids they take
  BatchedRows rows_;
  RowOf row_of_;
  std::optional<BatchedRows> event_rows_;
  EventRow event_row_;
  std::unordered_map<std::string, Entry> cache_;  // committed states, by id
  std::unordered_map<std::string, Entry> older_;  // the cache_ before, not touched since
  std::vector<std::pair<const std::string, Entry>*> changed_;  // by this batch
};

// The writer of an entity table: its row is (id, version, doc, first_position) and the
// `extra` columns, whose values `extra_values` gives; `event_rows`/`event_row` as FoldWriter's.
template <class A>
std::unique_ptr<CopyWriter> fold_writer(
    es::EventStore& store, const es::SqlDialect& d, std::int64_t generation, const std::string& table,
    std::function<std::string(const typename A::State&, es::StreamVersion)> render,
    std::vector<std::string> extra = {},
    std::function<std::vector<std::string>(const typename A::State&)> extra_values = nullptr,
    std::optional<BatchedRows> event_rows = std::nullopt, typename FoldWriter<A>::EventRow event_row = nullptr) {
  std::string columns = "id, version, doc, first_position",
              updates = "version = excluded.version, doc = excluded.doc, first_position = excluded.first_position";
  for (const auto& column : extra) {
    columns += ", " + column;
    updates += ", " + column + " = excluded." + column;
  }
  const int width = 4 + static_cast<int>(extra.size());
  // Each entity once per batch: one statement never updates a row twice.
  BatchedRows rows(
      [&d, generation, table, columns, updates, width](int n) {
        return with_generation("INSERT INTO " + table + "{g} (" + columns + ") VALUES " + values_rows(d, n, width) +
                                   " ON CONFLICT (id) DO UPDATE SET " + updates,
                               generation);
      },
      width);
  return std::make_unique<FoldWriter<A>>(
      store, d, with_generation(table + "{g}", generation), std::move(rows),
      [render, extra_values](const std::string& id, const typename FoldWriter<A>::Entry& e) {
        std::vector<BatchedRows::Value> row{id, e.version.value(), render(e.state, e.version), e.first_position.value()};
        if (extra_values)
          for (auto& v : extra_values(e.state)) row.emplace_back(std::move(v));
        return row;
      },
      std::move(event_rows), std::move(event_row));
}

// A query of the copy of `generation` that answers documents: one or none by id, or every
// one in id order.
Result<std::optional<Document>> document(es::ReadModelDb& db, std::int64_t generation, const EntityQueries& q,
                                         const std::string& id) {
  std::optional<Document> doc;
  const SqlValue params[] = {id};
  OF_RETURN_IF_ERROR(db.query(with_generation(q.one, generation), params, [&](const Row& r) {
    doc.emplace(Document{std::string(r.text(0)), es::StreamVersion{r.int64(1)}});
  }));
  return doc;
}

Result<void> every_document(es::ReadModelDb& db, std::int64_t generation, const EntityQueries& q,
                            const DocumentVisitor& fn) {
  return db.query(with_generation(q.every, generation), {},
                  [&](const Row& r) { fn(std::string(r.text(0)), std::string(r.text(1))); });
}

}  // namespace

EntityQueries::EntityQueries(const es::SqlDialect& d, const std::string& table)
    : one("SELECT doc, version FROM " + table + "{g} WHERE id = " + d.param(1)),
      every("SELECT id, doc FROM " + table + "{g} ORDER BY id") {}

// ---- orders

OrdersProjection::OrdersProjection(es::ReadModelDb& db, es::EventStore& store)
    : TableProjection(db, "orders", category("order"),
                      {entity_table(db.dialect(), "orders", {"customer_id", "status"}),
                       "CREATE INDEX IF NOT EXISTS orders_by_customer{g} ON orders{g} (customer_id, first_position)",
                       "CREATE INDEX IF NOT EXISTS orders_by_status{g} ON orders{g} (status, first_position)",
                       "CREATE INDEX IF NOT EXISTS orders_by_position{g} ON orders{g} (first_position)"},
                      {"orders{g}"}),
      store_(store), queries_(db.dialect(), "orders") {}

std::unique_ptr<CopyWriter> OrdersProjection::writer(std::int64_t generation) {
  return fold_writer<Order>(store_, db_.dialect(), generation, "orders", &order_document, {"customer_id", "status"},
                            [](const domain::order::State& state) {
                              return std::vector<std::string>{state.customer_id, to_string(state.status)};
                            });
}

Result<std::optional<Document>> OrdersProjection::get(const std::string& order_id) {
  return read([&](std::int64_t g) { return document(db_, g, queries_, order_id); });
}

Result<Page> OrdersProjection::list(const OrderListQuery& q) {
  std::int64_t before = INT64_MAX;  // a position
  if (q.cursor) {
    auto [end, ec] = std::from_chars(q.cursor->data(), q.cursor->data() + q.cursor->size(), before);
    if (ec != std::errc() || end != q.cursor->data() + q.cursor->size() || before < 1)
      return fail(Errc::invalid_argument, "cursor is not one this server gave out");
  }
  const auto& d = db_.dialect();
  std::vector<SqlValue> params{before};
  std::string sql = "SELECT doc, first_position FROM orders{g} WHERE first_position < " + d.param(1);
  auto where = [&](const char* column, const std::string& value) {
    params.emplace_back(value);
    sql += std::string(" AND ") + column + " = " + d.param(static_cast<int>(params.size()));
  };
  if (q.customer_id) where("customer_id", *q.customer_id);
  if (q.status) where("status", *q.status);
  params.emplace_back(std::int64_t{q.limit} + 1);
  sql += " ORDER BY first_position DESC LIMIT " + d.param(static_cast<int>(params.size()));
  return read([&](std::int64_t g) -> Result<Page> {
    Page page;
    es::Position last{0};
    OF_RETURN_IF_ERROR(db_.query(with_generation(sql, g), params, [&](const Row& r) {
      if (page.documents.size() == static_cast<std::size_t>(q.limit)) {
        page.next_cursor = to_string(last);
        return;
      }
      page.documents.emplace_back(r.text(0));
      last = es::Position{r.int64(1)};
    }));
    return page;
  });
}

Result<void> OrdersProjection::for_each(const DocumentVisitor& fn) {
  return read([&](std::int64_t g) { return every_document(db_, g, queries_, fn); });
}

// ---- products

ProductsProjection::ProductsProjection(es::ReadModelDb& db, es::EventStore& store)
    : TableProjection(db, "products", category("product"), {entity_table(db.dialect(), "products", {})},
                      {"products{g}"}),
      store_(store), queries_(db.dialect(), "products"),
      page_("SELECT doc, id FROM products{g} WHERE id > " + db.dialect().param(1) + " ORDER BY id LIMIT " +
            db.dialect().param(2)) {}

std::unique_ptr<CopyWriter> ProductsProjection::writer(std::int64_t generation) {
  return fold_writer<Product>(store_, db_.dialect(), generation, "products", &product_document);
}

Result<std::optional<Document>> ProductsProjection::get(const std::string& product_id) {
  return read([&](std::int64_t g) { return document(db_, g, queries_, product_id); });
}

Result<Page> ProductsProjection::list(int limit, const std::optional<std::string>& cursor) {
  const std::string after = cursor.value_or("");
  const SqlValue params[] = {after, std::int64_t{limit} + 1};
  return read([&](std::int64_t g) -> Result<Page> {
    Page page;
    std::string last;
    OF_RETURN_IF_ERROR(db_.query(with_generation(page_, g), params, [&](const Row& r) {
      if (page.documents.size() == static_cast<std::size_t>(limit)) {
        page.next_cursor = last;
        return;
      }
      page.documents.emplace_back(r.text(0));
      last = r.text(1);
    }));
    return page;
  });
}

Result<void> ProductsProjection::for_each(const DocumentVisitor& fn) {
  return read([&](std::int64_t g) { return every_document(db_, g, queries_, fn); });
}

// ---- accounts

// The accounts' money movements, one row per event that moves money.
static std::string transactions_table(const es::SqlDialect& d) {
  return "CREATE TABLE IF NOT EXISTS transactions{g} (position " + d.integer + " PRIMARY KEY, account_id " + d.text +
         " NOT NULL, type " + d.text + " NOT NULL, amount_cents " + d.integer + " NOT NULL, order_id " + d.text +
         " NOT NULL, at_ms " + d.integer + " NOT NULL)" + d.table_options;
}

AccountsProjection::AccountsProjection(es::ReadModelDb& db, es::EventStore& store)
    : TableProjection(db, "accounts", category("account"),
                      {entity_table(db.dialect(), "accounts", {}), transactions_table(db.dialect()),
                       "CREATE INDEX IF NOT EXISTS transactions_by_account{g} ON transactions{g} (account_id, position)"},
                      {"accounts{g}", "transactions{g}"}),
      store_(store), queries_(db.dialect(), "accounts"),
      page_("SELECT type, amount_cents, order_id, at_ms, position FROM transactions{g} WHERE account_id = " +
            db.dialect().param(1) + " AND position > " + db.dialect().param(2) + " ORDER BY position LIMIT " +
            db.dialect().param(3)) {}

std::unique_ptr<CopyWriter> AccountsProjection::writer(std::int64_t generation) {
  using namespace domain::account;
  BatchedRows ledger(
      [&d = db_.dialect(), generation](int n) {
        return with_generation(
            "INSERT INTO transactions{g} (position, account_id, type, amount_cents, order_id, at_ms) VALUES " +
                values_rows(d, n, 6) + " ON CONFLICT DO NOTHING",
            generation);
      },
      6);
  return fold_writer<Account>(
      store_, db_.dialect(), generation, "accounts", &account_document, {}, nullptr, std::move(ledger),
      [](const std::string& id, const es::RecordedEvent& e,
         const Event& event) -> std::optional<std::vector<BatchedRows::Value>> {
        auto row = [&](std::string type, std::int64_t amount, std::string order_id) {
          return std::vector<BatchedRows::Value>{e.position.value(), id,       std::move(type), amount,
                                                 std::move(order_id), e.recorded_at_ms};
        };
        return std::visit(domain::overloaded{
                              [&](const FundsDeposited& d) { return std::optional(row("deposit", d.amount_cents, "")); },
                              [&](const FundsWithdrawn& w) {
                                return std::optional(row("withdrawal", w.amount_cents, ""));
                              },
                              [&](const AccountCharged& c) {
                                return std::optional(row("charge", c.amount_cents, c.order_id));
                              },
                              [&](const AccountRefunded& r) {
                                return std::optional(row("refund", r.amount_cents, r.order_id));
                              },
                              // No money moves: not in the ledger.
                              [](const AccountOpened&) { return std::optional<std::vector<BatchedRows::Value>>(); },
                              [](const ChargeDeclined&) { return std::optional<std::vector<BatchedRows::Value>>(); },
                          },
                          event);
      });
}

Result<std::optional<Document>> AccountsProjection::get(const std::string& account_id) {
  return read([&](std::int64_t g) { return document(db_, g, queries_, account_id); });
}

Result<std::vector<Transaction>> AccountsProjection::transactions(const std::string& account_id, int limit,
                                                                   es::Position after) {
  const SqlValue params[] = {account_id, after.value(), std::int64_t{limit}};
  return read([&](std::int64_t g) -> Result<std::vector<Transaction>> {
    std::vector<Transaction> out;
    OF_RETURN_IF_ERROR(db_.query(with_generation(page_, g), params, [&](const Row& r) {
      out.push_back(
          Transaction{std::string(r.text(0)), r.int64(1), std::string(r.text(2)), r.int64(3), es::Position{r.int64(4)}});
    }));
    return out;
  });
}

Result<void> AccountsProjection::for_each(const DocumentVisitor& fn) {
  return read([&](std::int64_t g) { return every_document(db_, g, queries_, fn); });
}

}  // namespace orderflow::app::projections
