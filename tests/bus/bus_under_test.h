// Real buses for the relay's tests, started by the tests on loopback ports in temp dirs:
// a nats-server with JetStream (`-js -sd DIR`), and a 3-broker Kafka cluster (librdkafka's
// mock cluster, reached like any cluster through its bootstrap servers). One interface,
// so the relay's contract suite runs once on each.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "es/bus.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::testing {

// The categories the tests write events of (none the projections fold); the Kafka cluster
// has their topics, orderflow.events.<category>.
inline constexpr const char* kTestCategories[] = {"cart", "invoice", "shipment"};

struct Received {
  std::string topic;
  std::string key;  // Kafka's message key; NATS carries none
  std::map<std::string, std::string> headers;
  std::string body;
};

class BusUnderTest {
 public:
  virtual ~BusUnderTest() = default;
  virtual std::string name() const = 0;
  virtual std::string url() const = 0;  // as `serve --bus` takes it
  // The bus goes away (its server stops; its brokers refuse connections) and comes back
  // with what it had stored.
  virtual void stop() = 0;
  virtual void start() = 0;
  // Messages stored, duplicates included.
  virtual std::size_t count() = 0;
  // Every message stored, each stream's in the order the bus delivers them.
  virtual std::vector<Received> read_all() = 0;
  // How many of the stored messages the consumer (a JetStream durable, a Kafka group) has
  // acknowledged for good: the durable's ack floor (a stream sequence); the group's
  // committed offsets summed over the partitions of every topic.
  virtual std::uint64_t acked(const std::string& consumer) = 0;
  // The bus-fed projector's dead letters (consumer orderflow-projector), in the order stored.
  virtual std::vector<Received> dead_letters() = 0;
  // Whether the bus stores an event id once however often it is published again (JetStream
  // within its window); otherwise consumers de-duplicate by (stream, version) (Kafka).
  virtual bool dedupes_by_id() const = 0;
};

std::unique_ptr<BusUnderTest> start_nats();
std::unique_ptr<BusUnderTest> start_kafka();

// Makes the relay's JetStream stream (ORDERFLOW_EVENTS) beforehand, as an operator might:
// holding `subjects`, and at most `max_messages` of them (-1: no limit; past it the oldest
// are removed, read or not).
void make_nats_stream(const BusUnderTest& nats, const std::vector<std::string>& subjects, std::int64_t max_messages);

// Whether `done` came true within `limit` (looked at every 20 ms).
bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit);

// The SQLite event store at `path` (created if missing), as the tests' log; fails the test
// and answers null if it cannot be opened.
std::unique_ptr<sqlite::SqliteEventStore> open_sqlite_store(const std::string& path);

// Starts `orderflow serve` (ORDERFLOW_BIN) on the store in `data_dir`, on any free port,
// with `roles` and `--bus bus_url`; answers its pid. Killed if the test process dies.
int spawn_serve(const std::string& data_dir, const std::string& roles, const std::string& bus_url);

// A publisher for the bus's URL, made as `serve --bus` makes it.
std::unique_ptr<es::BusPublisher> publisher_for(const BusUnderTest& bus);

}  // namespace orderflow::testing
