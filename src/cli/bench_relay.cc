// orderflow bench relay: the log relayed to a bus (the relay of app/relay, from position
// 1 to the head), beside a raw publish of the same messages with the same client in the
// same run: the batches the relay publishes, sent straight from memory, without reading
// the store or saving a checkpoint.
#include <fmt/core.h>

#include <boost/json.hpp>
#include <filesystem>
#include <thread>

#include "app/relay/relay.h"
#include "cli/bench.h"
#include "cli/bus_factory.h"
#include "core/log.h"
#include "core/uuid.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::cli {

namespace {
using Clock = std::chrono::steady_clock;
constexpr std::size_t kBatch = 1000;  // the relay's batch (RelayOptions::batch_size)
}  // namespace

int bench_relay(const RelayBenchOptions& o) {
  auto url = parse_bus_url(o.bus);
  if (!url) {
    log::error("orderflow", url.error().message);
    return 2;
  }
  std::filesystem::create_directories(o.data);
  sqlite::SqliteEventStoreOptions options;
  options.path = (std::filesystem::path(o.data) / "bench-relay.db").string();
  std::filesystem::remove(options.path);  // the relay starts from an empty checkpoint
  std::filesystem::remove(options.path + "-wal");
  auto store = sqlite::SqliteEventStore::open(options);
  if (!store) return runtime_failure(store.error().message);
  if (auto r = fill_store(**store, o.events); !r) return runtime_failure(r.error().message);
  auto events = (*store)->read_all(es::Position{1}, static_cast<std::size_t>(o.events));
  if (!events) return runtime_failure(events.error().message);

  // Raw: the same messages under ids of their own (JetStream would drop the relay's as
  // duplicates of these otherwise), published in the relay's batches.
  const std::string run = uuid_v7().substr(0, 8);
  std::vector<es::BusMessage> messages;
  messages.reserve(events->size());
  for (const auto& e : *events) {
    messages.push_back(app::relay::message(e, o.topic_prefix));
    messages.back().id = "raw-" + run + "-" + messages.back().id;
  }
  auto raw_bus = open_bus(*url, BusSpec{.url = o.bus, .topic_prefix = o.topic_prefix});
  auto start = Clock::now();
  for (std::size_t i = 0; i < messages.size(); i += kBatch) {
    auto n = std::min(kBatch, messages.size() - i);
    if (auto r = raw_bus->publish(std::span(messages).subspan(i, n)); !r) return runtime_failure(r.error().message);
  }
  const double raw_s = std::chrono::duration<double>(Clock::now() - start).count();

  auto bus = open_bus(*url, BusSpec{.url = o.bus, .topic_prefix = o.topic_prefix});
  app::relay::Relay relay(**store, **store, *bus,
                          {.bus = o.bus, .topic_prefix = o.topic_prefix, .batch_size = kBatch});
  const auto last = events->back().position;
  start = Clock::now();
  relay.start();
  while (relay.status().position < last) {
    if (auto s = relay.status(); s.last_error) return runtime_failure("the relay failed: " + *s.last_error);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const double relay_s = std::chrono::duration<double>(Clock::now() - start).count();
  relay.stop();
  (*store)->close();

  const double n = static_cast<double>(events->size());
  const double raw_rate = n / raw_s, relay_rate = n / relay_s;
  fmt::print("{:<28} {:>12}\n", "bus", o.bus);
  fmt::print("{:<28} {:>12}\n", "events", events->size());
  fmt::print("{:<28} {:>12.0f}\n", "relayed events/s", relay_rate);
  fmt::print("{:<28} {:>12.0f}\n", "raw publish msgs/s", raw_rate);
  fmt::print("{:<28} {:>12.2f}\n", "ratio to raw", relay_rate / raw_rate);
  boost::json::object out{{"bench", "relay"},
                          {"bus", url->kind == BusKind::nats ? "nats" : "kafka"},
                          {"events", events->size()},
                          {"events_per_s", relay_rate},
                          {"raw_events_per_s", raw_rate},
                          {"ratio_to_raw", relay_rate / raw_rate}};
  fmt::print("{}\n", boost::json::serialize(out));
  return 0;
}

}  // namespace orderflow::cli
