#include "app/verify.h"

#include <algorithm>
#include <map>

#include "app/invariants.h"
#include "app/projections/documents.h"

namespace orderflow::app {

namespace {

// The version each stream of `category` had at `through`, by id: streams begun later are not there.
Result<std::map<std::string, es::StreamVersion>> stream_versions(es::EventStore& store, const char* category,
                                                                 es::Position through) {
  OF_ASSIGN_OR_RETURN(const auto at, es::stream_versions_at(store, es::EventFilter{.categories = {category}}, through));
  const std::size_t prefix = std::string_view(category).size() + 1;
  std::map<std::string, es::StreamVersion> versions;
  for (const auto& [stream, version] : at) versions.emplace(stream.str().substr(prefix), version);
  return versions;
}

// The stream's events folded from the start, snapshots not used: what verify compares
// everything else with.
template <class A>
Result<Loaded<A>> fold_all(es::EventStore& store, const std::string& id, es::StreamVersion until = es::StreamVersion{-1}) {
  return fold_stream<A>(store, id, Loaded<A>{A::decider.initial_state(), es::kNoStream}, until);
}

// One document against its stream: at least at `at_through` (the stream's version when the read
// models were caught up), and equal to the fold through the version it shows.
template <class A, class Render>
Result<void> compare_document(VerifyContext& ctx, const std::string& what, const std::string& id,
                              const projections::Document& doc, es::StreamVersion at_through, Render render,
                              Differences& out) {
  const auto name = what + " " + id;
  if (doc.version < at_through) {
    out.push_back(name + ": read model at version " + to_string(doc.version) + "; the stream was at version " +
                  to_string(at_through) + " by position " + std::to_string(ctx.through.value()));
    return {};
  }
  OF_ASSIGN_OR_RETURN(auto folded, fold_all<A>(ctx.store, id, std::max(doc.version, es::StreamVersion{0})));
  if (folded.version == es::kNoStream) out.push_back(name + ": in the read model but not in the store");
  else if (folded.version < doc.version)
    out.push_back(name + ": read model has " + doc.json + "; the stream ends at version " + to_string(folded.version));
  else if (const auto expected = render(folded.state, folded.version); doc.json != expected)
    out.push_back(name + ": read model has " + doc.json + "; the store has " + expected);
  return {};
}

// Compares the read model's documents with their streams (compare_document), and names every
// stream of the log through ctx.through that has none.
template <class A, class Projection, class Render>
Result<void> compare(VerifyContext& ctx, Projection& projection, const std::string& what, Render render,
                     Differences& out) {
  OF_ASSIGN_OR_RETURN(auto versions, stream_versions(ctx.store, A::category, ctx.through));
  for (const auto& [id, at_through] : versions) {
    OF_ASSIGN_OR_RETURN(auto doc, projection.get(id));
    if (doc) {
      OF_RETURN_IF_ERROR(compare_document<A>(ctx, what, id, *doc, at_through, render, out));
      continue;
    }
    OF_ASSIGN_OR_RETURN(auto folded, fold_all<A>(ctx.store, id));
    out.push_back(what + " " + id + ": missing from the read model; the store has " +
                  render(folded.state, folded.version));
  }
  // Documents of streams begun past ctx.through (writers went on), or of none.
  std::vector<std::string> others;
  OF_RETURN_IF_ERROR(projection.for_each([&](const std::string& id, const std::string&) {
    if (!versions.count(id)) others.push_back(id);
  }));
  for (const auto& id : others) {
    OF_ASSIGN_OR_RETURN(auto doc, projection.get(id));
    if (doc) OF_RETURN_IF_ERROR(compare_document<A>(ctx, what, id, *doc, es::kNoStream, render, out));
  }
  return {};
}

}  // namespace

Result<void> check_orders(VerifyContext& ctx, Differences& out) {
  return compare<Order>(ctx, ctx.read.orders(), "order", projections::order_document, out);
}
Result<void> check_products(VerifyContext& ctx, Differences& out) {
  return compare<Product>(ctx, ctx.read.products(), "product", projections::product_document, out);
}
Result<void> check_accounts(VerifyContext& ctx, Differences& out) {
  return compare<Account>(ctx, ctx.read.accounts(), "account", projections::account_document, out);
}

namespace {

// One snapshot of aggregate A against its stream's fold through the snapshot's version.
template <class A>
Result<void> check_snapshot(VerifyContext& ctx, const es::Snapshot& snap, Differences& out) {
  const std::string id = snap.stream_id.str().substr(std::string_view(A::category).size() + 1);
  OF_ASSIGN_OR_RETURN(auto folded, fold_all<A>(ctx.store, id, snap.version));
  const auto where = "snapshot " + snap.stream_id.str() + " at version " + to_string(snap.version);
  if (folded.version < snap.version) {
    out.push_back(where + ": the stream ends at version " + to_string(folded.version));
    return {};
  }
  // States compare as values: the JSON of one state may order a map's keys differently
  // from one version of the code to the next.
  auto held = codec::decode_state<typename A::State>(snap.state);
  if (held && *held == folded.state) return {};
  out.push_back(where + ": holds " + snap.state + "; its events fold to " + codec::encode_state(folded.state));
  return {};
}

}  // namespace

Result<void> check_snapshots(VerifyContext& ctx, Differences& out) {
  Result<void> failed;
  auto listed = ctx.snapshots.for_each_snapshot([&](const es::Snapshot& snap) {
    if (!failed) return;
    // A snapshot of another state schema is ignored by every load (never fatal).
    if (snap.schema_version != codec::kStateSchemaVersion) return;
    auto category = snap.stream_id.category();
    if (category == Product::category) failed = check_snapshot<Product>(ctx, snap, out);
    else if (category == Account::category) failed = check_snapshot<Account>(ctx, snap, out);
    else if (category == Order::category) failed = check_snapshot<Order>(ctx, snap, out);
    else out.push_back("snapshot " + snap.stream_id.str() + ": a stream of no aggregate");
  });
  if (!listed) return listed;
  return failed;
}

// docs/api.md §5's invariants, folded from the store (app/invariants.h).
Result<void> check_saga_invariants(VerifyContext& ctx, Differences& out) {
  OF_ASSIGN_OR_RETURN(auto violations, check_invariants(ctx.store));
  for (auto& v : violations) out.push_back(std::move(v));
  return {};
}

const std::vector<VerifyCheck>& verify_checks() {
  static const std::vector<VerifyCheck> checks{{"orders", &check_orders},
                                               {"products", &check_products},
                                               {"accounts", &check_accounts},
                                               {"snapshots", &check_snapshots},
                                               {"invariants", &check_saga_invariants}};
  return checks;
}

}  // namespace orderflow::app
