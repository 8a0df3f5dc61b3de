// orderflow bench projection: builds the read models from a store of E events (a mix that
// touches every projection: products, accounts, orders placed and confirmed, stock reserved,
// accounts charged), first all four at once from an empty read-model database, then each
// one rebuilt alone while the others keep their copies. Rates are log events per second.
#include <fmt/core.h>

#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "app/projections/read_side.h"
#include "store/sqlite/sqlite_read_model_db.h"
#include "cli/bench.h"
#include "cli/progress.h"
#include "codec/domain_codec.h"
#include "core/time.h"
#include "core/uuid.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::cli {

namespace {

using Clock = std::chrono::steady_clock;
namespace order = domain::order;
namespace product = domain::product;
namespace account = domain::account;

constexpr int kProducts = 200;
constexpr int kCustomers = 1000;

template <class Event>
es::NewEvent new_event(const Event& e) {
  return {uuid_v7(), event_type_name(e), codec::kEventSchemaVersion, codec::encode_event(e),
          R"({"correlation_id":"bench","actor":"bench"})"};
}

}  // namespace

Result<void> fill_projection_mix(es::EventStore& store, std::int64_t target) {
  OF_ASSIGN_OR_RETURN(auto have, store.last_position());
  if (have >= target) return {};
  fmt::print("filling the store with {} events...\n", target - have.value());
  Progress progress("filling the store", static_cast<std::uint64_t>(target), [&store] {
    auto last = store.last_position();
    return static_cast<std::uint64_t>(last ? last->value() : 0);
  });
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<bool> failed{false};
  auto append = [&](std::string stream, std::vector<es::NewEvent> events) {
    while (in_flight.load() >= 64) std::this_thread::sleep_for(std::chrono::microseconds(100));
    ++in_flight;
    store.append_async({es::StreamId(std::move(stream)), es::ExpectedVersion::any(), std::move(events), {}},
                       [&](Result<es::AppendResult> r) {
                         if (!r) failed = true;
                         --in_flight;
                       });
  };
  const auto run = uuid_v7().substr(24, 8);
  auto product_id = [&](std::int64_t i) { return fmt::format("b{}-p{}", run, i % kProducts); };
  auto customer_id = [&](std::int64_t i) { return fmt::format("b{}-c{}", run, i % kCustomers); };
  std::int64_t events = have.value();
  for (int i = 0; i < kProducts; ++i, ++events)
    append("product-" + product_id(i),
           {new_event(product::Event(product::ProductRegistered{product_id(i), "Bench", 250, 1000000000}))});
  for (int i = 0; i < kCustomers; ++i, events += 2)
    append("account-" + customer_id(i), {new_event(account::Event(account::AccountOpened{customer_id(i), "Bench"})),
                                         new_event(account::Event(account::FundsDeposited{1000000000}))});
  for (std::int64_t i = 0; events < target; ++i, events += 4) {
    const auto id = uuid_v7();
    const auto at = now_unix_ms();
    order::OrderPlaced placed{id, customer_id(i), {{product_id(i), 2, 250, 500}}, 500, std::nullopt, at};
    append("order-" + id, {new_event(order::Event(placed)), new_event(order::Event(order::OrderConfirmed{at}))});
    append("product-" + product_id(i), {new_event(product::Event(product::StockReserved{id, 2}))});
    append("account-" + customer_id(i), {new_event(account::Event(account::AccountCharged{id, 500}))});
  }
  while (in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (failed) return fail(Errc::internal, "filling the store failed");
  return {};
}

namespace {

// Waits until `name` (every projection if empty) runs at `last` with no rebuild under way.
Result<double> seconds_until_caught_up(es::ProjectionRunner& runner, es::Position last, const std::string& name,
                                       Clock::time_point start) {
  for (;;) {
    bool done = true;
    for (const auto& s : runner.status()) {
      if (!name.empty() && s.name != name) continue;
      if (s.state == es::ProjectionState::failed) return fail(Errc::internal, s.name + ": " + s.last_error.value_or(""));
      done = done && s.state == es::ProjectionState::running && s.position >= last;
    }
    if (done) return std::chrono::duration<double>(Clock::now() - start).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

int bench_projection(const ProjectionBenchOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.data, ec);
  if (ec) return runtime_failure("cannot create " + o.data + ": " + ec.message());
  sqlite::SqliteEventStoreOptions options;
  options.path = (std::filesystem::path(o.data) / "bench-projection.db").string();
  auto opened = sqlite::SqliteEventStore::open(options);
  if (!opened) return runtime_failure(opened.error().message);
  auto& store = **opened;
  if (auto r = fill_projection_mix(store, o.events); !r) return runtime_failure(r.error().message);
  auto last = store.last_position();
  if (!last) return runtime_failure(last.error().message);

  const auto read_models = (std::filesystem::path(o.data) / "bench-readmodels.db").string();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(read_models + suffix, ec);
  es::ProjectionRunnerOptions runner_options;
  if (o.batch > 0) runner_options.batch_size = o.batch;
  auto db = sqlite::SqliteReadModelDb::open(read_models);
  if (!db) return runtime_failure(db.error().message);
  auto read = app::projections::ReadSide::open(std::move(*db), store, runner_options);
  auto& runner = read->runner();

  auto start = Clock::now();
  auto cpu_start = cpu_seconds();
  if (auto r = runner.start(); !r) return runtime_failure(r.error().message);
  auto all = seconds_until_caught_up(runner, *last, "", start);
  if (!all) return runtime_failure(all.error().message);
  const double all_rate = static_cast<double>(last->value()) / *all;

  fmt::print("{:<24} {:>12} {:>10} {:>10} {:>14}\n", "build", "events", "seconds", "cpu s", "events/s");
  fmt::print("{:<24} {:>12} {:>10.2f} {:>10.2f} {:>14.0f}\n", "all four, from empty", last->value(), *all,
             cpu_seconds() - cpu_start, all_rate);
  std::string rebuilds;
  for (const char* name : {"orders", "products", "accounts", "sales"}) {
    start = Clock::now();
    cpu_start = cpu_seconds();
    if (auto r = runner.rebuild(name); !r) return runtime_failure(r.error().message);
    auto seconds = seconds_until_caught_up(runner, *last, name, start);
    if (!seconds) return runtime_failure(seconds.error().message);
    const double rate = static_cast<double>(last->value()) / *seconds;
    fmt::print("{:<24} {:>12} {:>10.2f} {:>10.2f} {:>14.0f}\n", fmt::format("rebuild {}", name), last->value(), *seconds,
               cpu_seconds() - cpu_start, rate);
    rebuilds += fmt::format(R"({}"{}":{:.0f})", rebuilds.empty() ? "" : ",", name, rate);
  }
  fmt::print(R"({{"bench":"projection","events":{},"events_per_s":{:.0f},"rebuild_events_per_s":{{{}}}}})" "\n",
             last->value(), all_rate, rebuilds);
  return 0;
}

}  // namespace orderflow::cli
