// orderflow bench consume: a bus-fed projector (app/bus_projector/) beside the log-tailing
// projection runner, on the same log in the same run, each on a read-model database of its
// own:
// 1. a store of E events of bench projection's mix, relayed to the bus (app/relay/);
// 2. catch-up: the four read models built from empty, from the bus (a new consumer) and
//    from the log: events/s each;
// 3. live: orders placed (OrderPlaced + OrderConfirmed) at --rate events a second for
//    --seconds while the relay, the bus-fed projector and the runner run: each one's
//    append-to-read-model lag p50/p99 over those events (commit time - recorded_at).
#include <fmt/core.h>

#include <boost/json.hpp>
#include <filesystem>
#include <thread>

#include "app/bus_projector/bus_projector.h"
#include "app/projections/read_side.h"
#include "store/sqlite/sqlite_read_model_db.h"
#include "app/relay/relay.h"
#include "cli/bench.h"
#include "cli/bus_factory.h"
#include "codec/domain_codec.h"
#include "core/log.h"
#include "core/time.h"
#include "core/uuid.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::cli {

namespace {

using Clock = std::chrono::steady_clock;

std::string fresh_file(const std::string& dir, const std::string& name) {
  const auto path = (std::filesystem::path(dir) / name).string();
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ec);
  return path;
}

std::unique_ptr<app::projections::ReadSide> open_read_side(const std::string& path, es::EventStore& store) {
  auto db = sqlite::SqliteReadModelDb::open(path);
  if (!db) return nullptr;
  return app::projections::ReadSide::open(std::move(*db), store);
}

bool runner_at(es::ProjectionRunner& runner, es::Position last) {
  for (const auto& s : runner.status())
    if (s.position < last) return false;
  return true;
}

// Appends orders (2 events each) at `rate` events a second for `seconds`.
Result<void> place_orders(es::EventStore& store, double rate, int seconds) {
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  std::atomic<bool> failed{false};
  std::atomic<int> in_flight{0};
  for (std::int64_t sent = 0; Clock::now() < end;) {
    const auto due = static_cast<std::int64_t>(std::chrono::duration<double>(Clock::now() - start).count() * rate);
    if (sent >= due) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    const auto id = uuid_v7();
    const auto at = now_unix_ms();
    domain::order::OrderPlaced placed{id, "live-c", {{"live-p", 1, 250, 250}}, 250, std::nullopt, at};
    std::vector<es::NewEvent> events;
    for (const auto& e : {domain::order::Event(placed), domain::order::Event(domain::order::OrderConfirmed{at})})
      events.push_back({uuid_v7(), event_type_name(e), codec::kEventSchemaVersion, codec::encode_event(e),
                        R"({"correlation_id":"bench","actor":"bench"})"});
    ++in_flight;
    store.append_async({es::StreamId("order-" + id), es::ExpectedVersion::no_stream(), std::move(events), {}},
                       [&](Result<es::AppendResult> r) {
                         if (!r) failed = true;
                         --in_flight;
                       });
    sent += 2;
  }
  while (in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (failed) return fail(Errc::internal, "appending the live orders failed");
  return {};
}

}  // namespace

int bench_consume(const ConsumeBenchOptions& o) {
  auto url = parse_bus_url(o.bus);
  if (!url) {
    log::error("orderflow", url.error().message);
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(o.data, ec);
  if (ec) return runtime_failure("cannot create " + o.data + ": " + ec.message());
  sqlite::SqliteEventStoreOptions options;
  options.path = fresh_file(o.data, "bench-consume.db");
  auto opened = sqlite::SqliteEventStore::open(options);
  if (!opened) return runtime_failure(opened.error().message);
  auto& store = **opened;
  if (auto r = fill_projection_mix(store, o.events); !r) return runtime_failure(r.error().message);
  const auto last = *store.last_position();

  // 1. The log relayed.
  auto publisher = open_bus(*url, BusSpec{.url = o.bus});
  app::relay::Relay relay(store, store, *publisher, {.bus = o.bus});
  relay.start();
  while (relay.status().position < last) {
    if (auto s = relay.status(); s.last_error) return runtime_failure("the relay failed: " + *s.last_error);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  fmt::print("relayed {} events to {}\n", last.value(), o.bus);

  // 2. Catch-up, from the bus and from the log.
  const auto bus_db = fresh_file(o.data, "bench-consume-bus.db");
  const auto log_db = fresh_file(o.data, "bench-consume-log.db");
  const BusSpec spec{.url = o.bus, .consumer = "bench-" + uuid_v7().substr(24, 8)};
  auto consumer = open_bus_consumer(*url, spec);
  auto bus_read = open_read_side(bus_db, store);
  if (!bus_read) return runtime_failure("cannot open " + bus_db);
  std::optional<app::bus_projector::BusProjector> projector;
  projector.emplace(*bus_read, *consumer, app::bus_projector::BusProjectorOptions{.bus = o.bus});
  auto start = Clock::now();
  auto cpu = cpu_seconds();
  if (auto r = projector->start(); !r) return runtime_failure(r.error().message);
  // Also from the first message applied on: a Kafka group's first assignment takes seconds
  // (the join and its rebalance), which the whole figure includes.
  std::optional<Clock::time_point> first_at;
  std::uint64_t first_applied = 0;
  for (;;) {
    const auto s = projector->status();
    const auto done = s.applied + s.dead_lettered;
    if (!first_at && done > 0) {
      first_at = Clock::now();
      first_applied = done;
    }
    if (done >= static_cast<std::uint64_t>(last.value())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto bus_end = Clock::now();
  const double bus_s = std::chrono::duration<double>(bus_end - start).count(), bus_cpu = cpu_seconds() - cpu;
  const double first_s = std::chrono::duration<double>(*first_at - start).count();
  const double after_first_s = std::chrono::duration<double>(bus_end - *first_at).count();
  const double after_first_rate =
      after_first_s > 0 ? static_cast<double>(static_cast<std::uint64_t>(last.value()) - first_applied) / after_first_s
                        : 0;
  const auto dead = projector->status().dead_lettered;
  projector.reset();

  auto log_read = open_read_side(log_db, store);
  if (!log_read) return runtime_failure("cannot open " + log_db);
  start = Clock::now();
  cpu = cpu_seconds();
  if (auto r = log_read->runner().start(); !r) return runtime_failure(r.error().message);
  while (!runner_at(log_read->runner(), last)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const double log_s = std::chrono::duration<double>(Clock::now() - start).count(), log_cpu = cpu_seconds() - cpu;
  log_read->runner().stop();
  log_read.reset();

  // 3. Live: fresh instances on the caught-up databases, so their lag figures cover only
  // the live events.
  projector.emplace(*bus_read, *consumer, app::bus_projector::BusProjectorOptions{.bus = o.bus});
  if (auto r = projector->start(); !r) return runtime_failure(r.error().message);
  log_read = open_read_side(log_db, store);
  if (auto r = log_read->runner().start(); !r) return runtime_failure(r.error().message);
  const auto applied_before = projector->status().applied;
  if (auto r = place_orders(store, o.rate, o.seconds); !r) return runtime_failure(r.error().message);
  const auto live_last = *store.last_position();
  const auto live_events = static_cast<std::uint64_t>(live_last - last);
  const auto drain_until = Clock::now() + std::chrono::seconds(60);
  while ((projector->status().applied - applied_before < live_events || !runner_at(log_read->runner(), live_last)) &&
         Clock::now() < drain_until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto bus_live = projector->status();
  double log_p50 = 0, log_p99 = 0;
  for (const auto& l : log_read->runner().lags()) {  // the slowest read model's
    log_p50 = std::max(log_p50, l.p50_ms);
    log_p99 = std::max(log_p99, l.p99_ms);
  }
  projector.reset();
  log_read->runner().stop();
  relay.stop();
  store.close();

  const double n = static_cast<double>(last.value());
  fmt::print("{:<40} {:>12} {:>10} {:>10} {:>12}\n", "catch-up, all four read models", "events", "seconds", "cpu s",
             "events/s");
  fmt::print("{:<40} {:>12} {:>10.2f} {:>10.2f} {:>12.0f}\n", "from the bus (bus-fed projector)", last.value(), bus_s, bus_cpu,
             n / bus_s);
  fmt::print("{:<40} {:>12} {:>10.2f} {:>10} {:>12.0f}\n",
             fmt::format("  from the first applied ({:.2f} s in)", first_s),
             static_cast<std::uint64_t>(last.value()) - first_applied, after_first_s, "", after_first_rate);
  fmt::print("{:<40} {:>12} {:>10.2f} {:>10.2f} {:>12.0f}\n", "from the log (projection runner)", last.value(), log_s, log_cpu,
             n / log_s);
  fmt::print("{:<40} {:>12} {:>10} {:>10}\n", fmt::format("live, {:.0f} events/s for {} s", o.rate, o.seconds),
             "events", "p50 ms", "p99 ms");
  fmt::print("{:<40} {:>12} {:>10.1f} {:>10.1f}\n", "append -> read model, from the bus", live_events,
             bus_live.lag_p50_ms, bus_live.lag_p99_ms);
  fmt::print("{:<40} {:>12} {:>10.1f} {:>10.1f}\n", "append -> read model, from the log", live_events, log_p50,
             log_p99);
  if (dead > 0 || bus_live.dead_lettered > 0) fmt::print("dead letters: {}\n", dead + bus_live.dead_lettered);
  boost::json::object out{{"bench", "consume"},
                          {"bus", url->kind == BusKind::nats ? "nats" : "kafka"},
                          {"events", last.value()},
                          {"bus_events_per_s", n / bus_s},
                          {"bus_first_applied_s", first_s},
                          {"bus_events_per_s_after_first", after_first_rate},
                          {"log_events_per_s", n / log_s},
                          {"live_rate", o.rate},
                          {"live_events", live_events},
                          {"bus_lag_p50_ms", bus_live.lag_p50_ms},
                          {"bus_lag_p99_ms", bus_live.lag_p99_ms},
                          {"log_lag_p50_ms", log_p50},
                          {"log_lag_p99_ms", log_p99}};
  fmt::print("{}\n", boost::json::serialize(out));
  return 0;
}

}  // namespace orderflow::cli
