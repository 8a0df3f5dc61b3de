// The read side of one process: the read-model database, the projections in it and the
// runner that keeps them folding the log (on a shared database, those this process holds).
// Projection names: orders, products, accounts, sales.
#pragma once

#include <memory>
#include <string>

#include "app/projections/entities.h"
#include "app/projections/sales.h"
#include "es/projection.h"

namespace orderflow::app::projections {

class ReadSide {
 public:
  // The projections in `db` (sqlite::SqliteReadModelDb or postgres::PostgresReadModelDb);
  // start() starts folding. `store` must outlive the read side.
  static std::unique_ptr<ReadSide> open(std::unique_ptr<es::ReadModelDb> db, es::EventStore& store,
                                        es::ProjectionRunnerOptions options = {});

  es::ProjectionRunner& runner() { return runner_; }
  OrdersProjection& orders() { return orders_; }
  ProductsProjection& products() { return products_; }
  AccountsProjection& accounts() { return accounts_; }
  SalesProjection& sales() { return sales_; }
  es::ReadModelDb& db() { return *db_; }

 private:
  ReadSide(std::unique_ptr<es::ReadModelDb> db, es::EventStore& store, es::ProjectionRunnerOptions options);

  std::unique_ptr<es::ReadModelDb> db_;
  OrdersProjection orders_;
  ProductsProjection products_;
  AccountsProjection accounts_;
  SalesProjection sales_;
  es::ProjectionRunner runner_;  // last: stops before the projections go
};

}  // namespace orderflow::app::projections
