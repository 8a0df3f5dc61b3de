// The entity projections: orders, products and accounts as docs/api.md §6 shows them, each
// folded per stream with the domain's own evolve(), so a read model equals a fold of the
// store (what `orderflow verify` checks). Rows keep the rendered document (what queries
// answer) and the stream version it reflects.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "app/projections/read_model_db.h"

namespace orderflow::app::projections {

// A page of documents, newest or lowest first as the query says. next_cursor is opaque to
// clients: pass it back as `cursor` for the next page; absent on the last page.
struct Page {
  std::vector<std::string> documents;
  std::optional<std::string> next_cursor;
};

// One entity's document and the stream version it reflects.
struct Document {
  std::string json;
  es::StreamVersion version = es::kNoStream;
};

struct OrderListQuery {
  std::optional<std::string> customer_id;
  std::optional<std::string> status;  // "PENDING", …
  int limit = 20;
  std::optional<std::string> cursor;
};

// Called with each entity's id and document, in id order.
using DocumentVisitor = std::function<void(const std::string& id, const std::string& document)>;

// The queries of an entity's documents in `table`, with kGeneration suffixes.
struct EntityQueries {
  EntityQueries(const es::SqlDialect& d, const std::string& table);
  std::string one;    // doc, version; parameter: id
  std::string every;  // id, doc, in id order
};

class OrdersProjection final : public TableProjection {
 public:
  // `store` (for re-folding states not in memory) must outlive the projection.
  OrdersProjection(es::ReadModelDb& db, es::EventStore& store);
  // The order's document, nullopt if there is no such order.
  Result<std::optional<Document>> get(const std::string& order_id);
  // Newest first (by the position of OrderPlaced). Paging is stable while orders arrive:
  // an order matching the filter throughout is returned exactly once. A malformed cursor
  // is invalid_argument.
  Result<Page> list(const OrderListQuery& query);
  Result<void> for_each(const DocumentVisitor& fn);

 private:
  std::unique_ptr<CopyWriter> writer(std::int64_t generation) override;

  es::EventStore& store_;
  const EntityQueries queries_;
};

class ProductsProjection final : public TableProjection {
 public:
  ProductsProjection(es::ReadModelDb& db, es::EventStore& store);
  Result<std::optional<Document>> get(const std::string& product_id);
  // By product_id.
  Result<Page> list(int limit, const std::optional<std::string>& cursor);
  Result<void> for_each(const DocumentVisitor& fn);

 private:
  std::unique_ptr<CopyWriter> writer(std::int64_t generation) override;

  es::EventStore& store_;
  const EntityQueries queries_;
  const std::string page_;  // parameters: after id, limit
};

struct Transaction {
  std::string type;  // deposit, withdrawal, charge, refund
  std::int64_t amount_cents = 0;
  std::string order_id;  // empty for deposits and withdrawals
  std::int64_t at_ms = 0;
  es::Position position{0};
};

class AccountsProjection final : public TableProjection {
 public:
  AccountsProjection(es::ReadModelDb& db, es::EventStore& store);
  Result<std::optional<Document>> get(const std::string& account_id);
  // The account's money movements, oldest first; `after`: a position from a previous page.
  Result<std::vector<Transaction>> transactions(const std::string& account_id, int limit, es::Position after);
  Result<void> for_each(const DocumentVisitor& fn);

 private:
  std::unique_ptr<CopyWriter> writer(std::int64_t generation) override;

  es::EventStore& store_;
  const EntityQueries queries_;
  const std::string page_;    // parameters: account id, after position, limit
};

}  // namespace orderflow::app::projections
