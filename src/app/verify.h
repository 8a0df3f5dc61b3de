// The checks of `orderflow verify`: each compares one thing the system promises against the
// event store and appends one line per difference. Add a check as one more function and one
// more entry in verify_checks().
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "app/stream_fold.h"
#include "app/projections/read_side.h"

namespace orderflow::app {

struct VerifyContext {
  es::EventStore& store;
  es::SnapshotStore& snapshots;
  projections::ReadSide& read;
  // The read models have applied the log through here. Writers may go on meanwhile (servers on
  // PostgreSQL): a document must stand at least where its stream stood here, and equal the fold
  // of its stream through the version it shows.
  es::Position through = std::numeric_limits<es::Position>::max();
};

using Differences = std::vector<std::string>;

// Every order, product and account read model equals the fold of its stream through the version
// the document shows, no document stands below its stream's version at `through`, and the read
// models hold nothing the store does not.
Result<void> check_orders(VerifyContext& ctx, Differences& out);
Result<void> check_products(VerifyContext& ctx, Differences& out);
Result<void> check_accounts(VerifyContext& ctx, Differences& out);
// Every stored snapshot equals the fold of its stream's events up to its version.
Result<void> check_snapshots(VerifyContext& ctx, Differences& out);

struct VerifyCheck {
  const char* name;
  Result<void> (*run)(VerifyContext&, Differences&);
};
const std::vector<VerifyCheck>& verify_checks();

}  // namespace orderflow::app
