#include "app/projections/read_side.h"

namespace orderflow::app::projections {

std::unique_ptr<ReadSide> ReadSide::open(std::unique_ptr<es::ReadModelDb> db, es::EventStore& store,
                                         es::ProjectionRunnerOptions options) {
  return std::unique_ptr<ReadSide>(new ReadSide(std::move(db), store, options));
}

ReadSide::ReadSide(std::unique_ptr<es::ReadModelDb> db, es::EventStore& store, es::ProjectionRunnerOptions options)
    : db_(std::move(db)),
      orders_(*db_, store),
      products_(*db_, store),
      accounts_(*db_, store),
      sales_(*db_),
      runner_(store, {&orders_, &products_, &accounts_, &sales_}, options) {}

}  // namespace orderflow::app::projections
