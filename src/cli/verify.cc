// orderflow verify: checks the log's hash chain, then folds every stream of the store (the
// embedded one while no server holds it; a PostgreSQL store at any time) and compares the
// result with the read models, after letting the projections catch up. Prints each
// difference; exit 1 if there is any. An embedded store that cannot be written (a full or
// read-only disk), or one given --read-only, is verified without writing anything: the read
// models are compared where they stand.
#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <thread>

#include "app/verify.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/store_factory.h"

namespace orderflow::cli {

namespace {

// The stored log, keeping the position of the last event its scans passed on (for Progress).
struct ScannedLog : es::StoredLog {
  explicit ScannedLog(es::StoredLog& log) : log(log) {}
  Result<es::Position> scan_stored(es::Position from, std::size_t max, const StoredFn& fn) override {
    return log.scan_stored(from, max, [this, &fn](const es::RecordedEvent& e, const es::StoredHashes& h) {
      fn(e, h);
      position.store(e.position, std::memory_order_relaxed);
    });
  }
  es::StoredLog& log;
  std::atomic<es::Position> position{es::Position{0}};
};

struct VerifyOptions {
  StoreSpec store;
  int wait_s = 60;  // --wait: how long the read models may stand still, short of the log's last position
};

// The store as the options ask; an embedded store that cannot be opened for writing (its disk
// is full or read-only), opened read-only instead, saying so. Sets spec.read_only then.
Result<OpenStore> open_verified_store(StoreSpec& spec) {
  auto store = open_store(spec);
  if (store || spec.read_only || is_postgres_url(spec.url) || store.error().code != Errc::unavailable) return store;
  StoreSpec reading = spec;
  reading.read_only = true;
  auto read = open_store(reading);
  if (!read) return store;  // the first error: the read-only one is of no more help (a lock held, no file)
  fmt::print("{:<10} the store cannot be written ({}): verified read-only, the read models where they stand\n",
             "read-only", store.error().message);
  spec.read_only = true;
  return read;
}

// The read models where they stand (read-only: nothing may catch them up): the least position
// any of them has applied, which every document is at least at. Prints each one's.
es::Position standing(es::ProjectionRunner& runner) {
  es::Position least = std::numeric_limits<es::Position>::max();
  std::string at;
  for (const auto& s : runner.status()) {
    least = std::min(least, s.position);
    at += fmt::format("{}{} at {}", at.empty() ? "" : ", ", s.name, s.position.value());
  }
  fmt::print("{:<10} compared where they stand: {}\n", "read models", at);
  return least == std::numeric_limits<es::Position>::max() ? es::Position{0} : least;
}

// "orders at position 12 (following: another process folds it)" for each read model short of
// `position`.
std::string behind(const std::vector<es::ProjectionStatus>& statuses, es::Position position) {
  std::string out;
  for (const auto& s : statuses) {
    if (s.position >= position) continue;
    if (!out.empty()) out += ", ";
    out += fmt::format("{} at position {} ({}", s.name, s.position.value(), es::to_string(s.state));
    if (s.state == es::ProjectionState::following) out += ": another process folds it";
    if (s.state == es::ProjectionState::rebuilding) out += fmt::format(": its new copy at {}", s.rebuilt.value());
    out += ")";
  }
  return out;
}

// Waits until every projection has applied `position`. An error if one has failed, or if none
// has moved for `wait` while some are short of it: a projector process stopped, or standing on
// a held stream, would keep verify waiting for ever.
Result<void> catch_up(es::ProjectionRunner& runner, es::Position position, std::chrono::seconds wait) {
  Progress progress("read models", static_cast<std::uint64_t>(position.value()), [&runner] {
    es::Position least = std::numeric_limits<es::Position>::max();
    for (const auto& s : runner.status()) least = std::min(least, s.position);
    return static_cast<std::uint64_t>(least.value());
  });
  std::vector<std::pair<es::Position, es::Position>> seen;
  auto moved_at = std::chrono::steady_clock::now();
  for (;;) {
    const auto statuses = runner.status();
    bool short_of = false;
    std::vector<std::pair<es::Position, es::Position>> now;
    for (const auto& s : statuses) {
      if (s.state == es::ProjectionState::failed)
        return fail(Errc::internal, "projection " + s.name + " failed: " + s.last_error.value_or(""));
      short_of = short_of || s.position < position;
      now.emplace_back(s.position, s.rebuilt);
    }
    if (!short_of) return {};
    if (now != seen) {
      seen = std::move(now);
      moved_at = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - moved_at >= wait) {
      return fail(Errc::unavailable,
                  fmt::format("the read models stood still for {} s short of the log's position {}: {}", wait.count(),
                              position.value(), behind(statuses, position)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int verify(const VerifyOptions& options) {
  auto spec = options.store;
  if (spec.read_only && is_postgres_url(spec.url))
    return usage_failure("--read-only is for the embedded store: a PostgreSQL store is verified beside its writers");
  auto store = open_verified_store(spec);
  if (!store) return runtime_failure(store.error().message);
  // The log first: every other check reads it, and stops at its first corrupt event.
  app::Differences breaks;
  {
    auto last = store->events().last_position();
    ScannedLog scanned(store->stored_log());
    Progress progress("chain", last ? static_cast<std::uint64_t>(last->value()) : 0,
                      [&scanned] { return static_cast<std::uint64_t>(scanned.position.load().value()); });
    es::check_chain(scanned, breaks);
  }
  for (const auto& d : breaks) fmt::print("chain: {}\n", d);
  fmt::print("{:<10} {}\n", "chain", breaks.empty() ? "ok" : fmt::format("{} breaks", breaks.size()));
  if (!breaks.empty()) {
    fmt::print("the log is corrupt: {} breaks; nothing else was checked\n", breaks.size());
    return 1;
  }
  auto read_models = open_read_models(spec);
  if (!read_models) return runtime_failure(read_models.error().message);
  auto read = app::projections::ReadSide::open(std::move(*read_models), store->events());
  auto last = store->events().last_position();
  if (!last) return runtime_failure(last.error().message);
  if (auto r = read->runner().start(); !r) return runtime_failure(r.error().message);
  es::Position through = *last;
  if (spec.read_only) {
    through = standing(read->runner());
  } else if (auto r = catch_up(read->runner(), *last, std::chrono::seconds(options.wait_s)); !r) {
    auto message = r.error().message;
    if (!is_postgres_url(spec.url))
      message += " (`orderflow verify --read-only` compares the read models where they stand, writing nothing)";
    return runtime_failure(message);
  }
  read->runner().stop();

  app::VerifyContext ctx{store->events(), store->snapshots(), *read, through};
  std::size_t total = 0;
  for (const auto& check : app::verify_checks()) {
    app::Differences found;
    if (auto r = check.run(ctx, found); !r) return runtime_failure(std::string(check.name) + ": " + r.error().message);
    for (const auto& d : found) fmt::print("{}: {}\n", check.name, d);
    fmt::print("{:<10} {}\n", check.name, found.empty() ? "ok" : fmt::format("{} differences", found.size()));
    total += found.size();
  }
  fmt::print("verified the store through position {}: {}\n", last->value(),
             total ? fmt::format("{} differences", total) : std::string("no differences"));
  return total ? 1 : 0;
}

}  // namespace

void add_verify(CLI::App& root, Settings& settings, Action& action) {
  auto options = std::make_shared<VerifyOptions>();
  auto* cmd = root.add_subcommand("verify", "Check the event log's hash chain, then compare the read models with a fold of the event store (exit 1 on a break or a difference)");
  add_store_settings(settings, *cmd, options->store);
  settings.add(*cmd, "read-only", options->store.read_only,
               "The embedded store: write nothing (no catching up of the read models, which are compared where they "
               "stand; no migration), e.g. for a backup; a store whose disk cannot be written is verified so anyway");
  settings
      .add(*cmd, "wait", options->wait_s,
           "Seconds the read models may stand still short of the log's last position before verify gives up (exit 1)")
      ->check(above_zero());
  cmd->callback([options, &action] { action = [options] { return verify(*options); }; });
}

}  // namespace orderflow::cli
