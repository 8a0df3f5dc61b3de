#include "app/projections/entities.h"

#include <charconv>
#include <unordered_map>

#include "app/aggregates.h"
#include "app/stream_fold.h"
#include "app/projections/documents.h"
#include "codec/domain_codec.h"

namespace orderflow::app::projections {

namespace {

// The columns every entity table starts with: id, version, doc (the API document),
// first_position (of the stream's first event). The folded state is not stored: see FoldWriter.
std::string entity_table(const std::string& table, const std::string& extra_columns) {
  return "CREATE TABLE IF NOT EXISTS " + table +
         "$ (id TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL, first_position INTEGER NOT NULL" +
         extra_columns + ") STRICT";
}

es::EventFilter category(const char* name) {
  es::EventFilter f;
  f.categories.emplace_back(name);
  return f;
}

// Folds a batch per stream: each entity touched is evolved by every event of the batch and
// written once. Events at or below an entity's stored version are skipped, so a batch
// delivered again changes nothing.
//
// Folded states live in memory only (this writer is its copy's only writer): storing them
// cost an encoding per save that grows with the entity (an account's every charge). An
// entity not in memory is folded again from the event store through the version its row
// records, which gives the state the row was rendered from, because stored events never
// change. The memory holds committed states only: a rolled-back batch forgets them all.
template <class A>
class FoldWriter final : public CopyWriter {
 public:
  struct Entry {
    typename A::State state = A::decider.initial_state();
    es::StreamVersion version = es::kNoStream;
    es::Position first_position = 0;
    bool changed = false;  // by the batch in hand
  };
  using Save = std::function<Result<void>(const std::string& id, const Entry&)>;
  // Extra rows for one event (the account ledger); may be null.
  using OnEvent = std::function<Result<void>(const std::string& id, const es::RecordedEvent&, const typename A::Event&)>;

  FoldWriter(es::EventStore& store, sqlite::Statement load, Save save, OnEvent on_event = nullptr)
      : store_(store), load_(std::move(load)), save_(std::move(save)), on_event_(std::move(on_event)) {}

  Result<void> apply(std::span<const es::RecordedEvent> events) override {
    const std::size_t prefix = std::string_view(A::category).size() + 1;
    if (cache_.size() > kCacheLimit) cache_.clear();
    for (const auto& e : events) {
      auto [it, fresh] = cache_.try_emplace(e.stream_id.substr(prefix));
      auto& entry = it->second;
      // A stream's first event has no row to load: its copy has not applied it (the copy
      // passes on only events past its position), so no batch has written one.
      if (fresh && e.version > 0)
        if (auto r = load(it->first, entry); !r) {
          cache_.erase(it);
          return r;
        }
      if (e.version <= entry.version) continue;
      auto event = codec::decode_event<typename A::Event>(e.type, e.data);
      if (!event)
        return fail(event.error().code, "event at position " + std::to_string(e.position) + " (" + e.type +
                                            " of " + e.stream_id + "): " + event.error().message);
      entry.state = A::decider.evolve(std::move(entry.state), *event);
      entry.version = e.version;
      if (entry.first_position == 0) entry.first_position = e.position;
      if (!entry.changed) changed_.push_back(&*it);
      entry.changed = true;
      if (on_event_)
        if (auto r = on_event_(it->first, e, *event); !r) return r;
    }
    for (auto* changed : changed_) {
      if (auto r = save_(changed->first, changed->second); !r) return r;
      changed->second.changed = false;
    }
    changed_.clear();
    return {};
  }

  void rolled_back() override {
    cache_.clear();
    changed_.clear();
  }

 private:
  // The entity as its row records it (initial if it has none).
  Result<void> load(const std::string& id, Entry& entry) {
    es::StreamVersion version = es::kNoStream;
    {
      sqlite::ResetOnExit reset(load_);
      load_.bind(1, id);
      auto row = load_.step();
      if (!row) return fail(row.error());
      if (!*row) return {};
      version = load_.int64(0);
      entry.first_position = load_.int64(1);
    }
    auto folded = fold_stream<A>(store_, id, Loaded<A>{A::decider.initial_state(), es::kNoStream}, version);
    if (!folded) return fail(folded.error());
    if (folded->version != version)
      return fail(Errc::corrupt, stream_of<A>(id) + " ends before version " + std::to_string(version) +
                                     ", which its read model has applied");
    entry.state = std::move(folded->state);
    entry.version = version;
    return {};
  }

  static constexpr std::size_t kCacheLimit = 50000;

  es::EventStore& store_;
  sqlite::Statement load_;
  Save save_;
  OnEvent on_event_;
  std::unordered_map<std::string, Entry> cache_;  // committed states, by id
  std::vector<std::pair<const std::string, Entry>*> changed_;  // by this batch
};

// The writer of an entity table. `save_sql` binds ?1 id, ?2 version, ?3 doc, ?4 first_position
// and whatever bind_extra binds from ?5 on.
template <class A>
Result<std::unique_ptr<CopyWriter>> fold_writer(
    es::EventStore& store, sqlite::Database& db, std::int64_t generation, const std::string& table,
    const std::string& save_sql,
    std::function<std::string(const typename A::State&, es::StreamVersion)> render,
    std::function<void(sqlite::Statement&, const typename A::State&)> bind_extra = nullptr,
    typename FoldWriter<A>::OnEvent on_event = nullptr) {
  auto load =
      db.prepare(with_generation("SELECT version, first_position FROM " + table + "$ WHERE id = ?1", generation));
  if (!load) return fail(load.error());
  auto save = db.prepare(with_generation(save_sql, generation));
  if (!save) return fail(save.error());
  auto shared_save = std::make_shared<sqlite::Statement>(std::move(*save));
  return std::unique_ptr<CopyWriter>(new FoldWriter<A>(
      store, std::move(*load),
      [shared_save, render, bind_extra](const std::string& id, const typename FoldWriter<A>::Entry& e) {
        auto& s = *shared_save;
        const auto doc = render(e.state, e.version);
        s.bind(1, id).bind(2, e.version).bind(3, doc).bind(4, e.first_position);
        if (bind_extra) bind_extra(s, e.state);
        return s.run();
      },
      std::move(on_event)));
}

// Runs `sql` (with '$' suffixes) on the live copy, calling on_row for each row.
template <class OnRow>
Result<void> query(ReadModelDb::Reader& r, std::int64_t generation, std::string_view sql,
                   const std::function<void(sqlite::Statement&)>& bind, OnRow on_row) {
  auto s = r.prepare(with_generation(sql, generation));
  if (!s) return fail(s.error());
  sqlite::ResetOnExit reset(**s);
  bind(**s);
  for (;;) {
    auto row = (*s)->step();
    if (!row) return fail(row.error());
    if (!*row) return {};
    on_row(**s);
  }
}

Result<std::optional<Document>> document(ReadModelDb::Reader& r, std::int64_t generation, const char* table,
                                         const std::string& id) {
  std::optional<Document> doc;
  auto done = query(
      r, generation, std::string("SELECT doc, version FROM ") + table + "$ WHERE id = ?1",
      [&](sqlite::Statement& s) { s.bind(1, id); },
      [&](sqlite::Statement& s) { doc.emplace(Document{std::string(s.text(0)), s.int64(1)}); });
  if (!done) return fail(done.error());
  return doc;
}

Result<void> every_document(ReadModelDb::Reader& r, std::int64_t generation, const char* table,
                            const DocumentVisitor& fn) {
  return query(
      r, generation, std::string("SELECT id, doc FROM ") + table + "$ ORDER BY id", [](sqlite::Statement&) {},
      [&](sqlite::Statement& s) { fn(std::string(s.text(0)), std::string(s.text(1))); });
}

}  // namespace

// ---- orders

OrdersProjection::OrdersProjection(ReadModelDb& db, es::EventStore& store)
    : SqliteProjection(db, "orders", category("order"),
                       {entity_table("orders", ", customer_id TEXT NOT NULL, status TEXT NOT NULL"),
                        "CREATE INDEX IF NOT EXISTS orders_by_customer$ ON orders$ (customer_id, first_position)",
                        "CREATE INDEX IF NOT EXISTS orders_by_status$ ON orders$ (status, first_position)",
                        "CREATE INDEX IF NOT EXISTS orders_by_position$ ON orders$ (first_position)"},
                       {"orders$"}),
      store_(store) {}

Result<std::unique_ptr<CopyWriter>> OrdersProjection::writer(sqlite::Database& db, std::int64_t generation) {
  return fold_writer<Order>(
      store_, db, generation, "orders",
      "INSERT OR REPLACE INTO orders$ (id, version, doc, first_position, customer_id, status) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
      &order_document, [](sqlite::Statement& s, const domain::order::State& state) {
        s.bind(5, state.customer_id).bind(6, std::string_view(to_string(state.status)));
      });
}

Result<std::optional<Document>> OrdersProjection::get(const std::string& order_id) {
  return read([&](ReadModelDb::Reader& r, std::int64_t g) { return document(r, g, "orders", order_id); });
}

Result<Page> OrdersProjection::list(const OrderListQuery& q) {
  es::Position before = INT64_MAX;
  if (q.cursor) {
    auto [end, ec] = std::from_chars(q.cursor->data(), q.cursor->data() + q.cursor->size(), before);
    if (ec != std::errc() || end != q.cursor->data() + q.cursor->size() || before < 1)
      return fail(Errc::invalid_argument, "cursor is not one this server gave out");
  }
  std::string sql = "SELECT doc, first_position FROM orders$ WHERE first_position < ?1";
  if (q.customer_id) sql += " AND customer_id = ?2";
  if (q.status) sql += " AND status = ?3";
  sql += " ORDER BY first_position DESC LIMIT ?4";
  return read([&](ReadModelDb::Reader& r, std::int64_t g) -> Result<Page> {
    Page page;
    es::Position last = 0;
    auto done = query(
        r, g, sql,
        [&](sqlite::Statement& s) {
          s.bind(1, before).bind(4, q.limit + 1);
          if (q.customer_id) s.bind(2, *q.customer_id);
          if (q.status) s.bind(3, *q.status);
        },
        [&](sqlite::Statement& s) {
          if (page.documents.size() == static_cast<std::size_t>(q.limit)) {
            page.next_cursor = std::to_string(last);
            return;
          }
          page.documents.emplace_back(s.text(0));
          last = s.int64(1);
        });
    if (!done) return fail(done.error());
    return page;
  });
}

Result<void> OrdersProjection::for_each(const DocumentVisitor& fn) {
  return read([&](ReadModelDb::Reader& r, std::int64_t g) { return every_document(r, g, "orders", fn); });
}

// ---- products

ProductsProjection::ProductsProjection(ReadModelDb& db, es::EventStore& store)
    : SqliteProjection(db, "products", category("product"), {entity_table("products", "")}, {"products$"}),
      store_(store) {}

Result<std::unique_ptr<CopyWriter>> ProductsProjection::writer(sqlite::Database& db, std::int64_t generation) {
  return fold_writer<Product>(
      store_, db, generation, "products",
      "INSERT OR REPLACE INTO products$ (id, version, doc, first_position) VALUES (?1, ?2, ?3, ?4)",
      &product_document);
}

Result<std::optional<Document>> ProductsProjection::get(const std::string& product_id) {
  return read([&](ReadModelDb::Reader& r, std::int64_t g) { return document(r, g, "products", product_id); });
}

Result<Page> ProductsProjection::list(int limit, const std::optional<std::string>& cursor) {
  const std::string after = cursor.value_or("");
  return read([&](ReadModelDb::Reader& r, std::int64_t g) -> Result<Page> {
    Page page;
    std::string last;
    auto done = query(
        r, g, "SELECT doc, id FROM products$ WHERE id > ?1 ORDER BY id LIMIT ?2",
        [&](sqlite::Statement& s) { s.bind(1, after).bind(2, limit + 1); },
        [&](sqlite::Statement& s) {
          if (page.documents.size() == static_cast<std::size_t>(limit)) {
            page.next_cursor = last;
            return;
          }
          page.documents.emplace_back(s.text(0));
          last = s.text(1);
        });
    if (!done) return fail(done.error());
    return page;
  });
}

Result<void> ProductsProjection::for_each(const DocumentVisitor& fn) {
  return read([&](ReadModelDb::Reader& r, std::int64_t g) { return every_document(r, g, "products", fn); });
}

// ---- accounts

AccountsProjection::AccountsProjection(ReadModelDb& db, es::EventStore& store)
    : SqliteProjection(db, "accounts", category("account"),
                       {entity_table("accounts", ""),
                        "CREATE TABLE IF NOT EXISTS transactions$ (position INTEGER PRIMARY KEY, account_id TEXT "
                        "NOT NULL, type TEXT NOT NULL, amount_cents INTEGER NOT NULL, order_id TEXT NOT NULL, "
                        "at_ms INTEGER NOT NULL) STRICT",
                        "CREATE INDEX IF NOT EXISTS transactions_by_account$ ON transactions$ (account_id, position)"},
                       {"accounts$", "transactions$"}),
      store_(store) {}

Result<std::unique_ptr<CopyWriter>> AccountsProjection::writer(sqlite::Database& db, std::int64_t generation) {
  auto ledger = db.prepare(with_generation(
      "INSERT OR IGNORE INTO transactions$ (position, account_id, type, amount_cents, order_id, at_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
      generation));
  if (!ledger) return fail(ledger.error());
  auto insert = std::make_shared<sqlite::Statement>(std::move(*ledger));
  using namespace domain::account;
  return fold_writer<Account>(
      store_, db, generation, "accounts",
      "INSERT OR REPLACE INTO accounts$ (id, version, doc, first_position) VALUES (?1, ?2, ?3, ?4)",
      &account_document, nullptr,
      [insert](const std::string& id, const es::RecordedEvent& e, const Event& event) -> Result<void> {
        auto row = [&](std::string_view type, std::int64_t amount, std::string_view order_id) {
          return insert->bind(1, e.position)
              .bind(2, id)
              .bind(3, type)
              .bind(4, amount)
              .bind(5, order_id)
              .bind(6, e.recorded_at_ms)
              .run();
        };
        return std::visit(domain::overloaded{
                              [&](const FundsDeposited& d) { return row("deposit", d.amount_cents, ""); },
                              [&](const FundsWithdrawn& w) { return row("withdrawal", w.amount_cents, ""); },
                              [&](const AccountCharged& c) { return row("charge", c.amount_cents, c.order_id); },
                              [&](const AccountRefunded& r) { return row("refund", r.amount_cents, r.order_id); },
                              // No money moves: not in the ledger.
                              [](const AccountOpened&) { return Result<void>(); },
                              [](const ChargeDeclined&) { return Result<void>(); },
                          },
                          event);
      });
}

Result<std::optional<Document>> AccountsProjection::get(const std::string& account_id) {
  return read([&](ReadModelDb::Reader& r, std::int64_t g) { return document(r, g, "accounts", account_id); });
}

Result<std::vector<Transaction>> AccountsProjection::transactions(const std::string& account_id, int limit,
                                                                   es::Position after) {
  return read([&](ReadModelDb::Reader& r, std::int64_t g) -> Result<std::vector<Transaction>> {
    std::vector<Transaction> out;
    auto done = query(
        r, g,
        "SELECT type, amount_cents, order_id, at_ms, position FROM transactions$ WHERE account_id = ?1 AND "
        "position > ?2 ORDER BY position LIMIT ?3",
        [&](sqlite::Statement& s) { s.bind(1, account_id).bind(2, after).bind(3, limit); },
        [&](sqlite::Statement& s) {
          out.push_back(Transaction{std::string(s.text(0)), s.int64(1), std::string(s.text(2)), s.int64(3),
                                    s.int64(4)});
        });
    if (!done) return fail(done.error());
    return out;
  });
}

Result<void> AccountsProjection::for_each(const DocumentVisitor& fn) {
  return read([&](ReadModelDb::Reader& r, std::int64_t g) { return every_document(r, g, "accounts", fn); });
}

}  // namespace orderflow::app::projections
