// The relay's contract, run once on each bus (NATS JetStream, Kafka): every event of the
// log reaches the bus, each stream's in order, with its headers and body; the bus going
// away and coming back loses nothing; a relay killed with SIGKILL and started again loses
// nothing and doubles only what the bus's dedup allows.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "app/relay/relay.h"
#include "bus/bus_under_test.h"
#include "codec/event_json.h"
#include "core/uuid.h"
#include "store/sqlite/sqlite_event_store.h"
#include "support/temp_dir.h"

namespace orderflow::testing {
namespace {

using namespace std::chrono_literals;
using BusFactory = std::function<std::unique_ptr<BusUnderTest>()>;

// 60 streams over the three test categories (the killed server runs the projections too:
// they skip these); event i of the run goes to stream i % 60.
es::StreamId stream_of(int i) {
  return es::StreamId(std::string(kTestCategories[i % 3]) + "-s" + std::to_string(i % 60));
}

void append_events(es::EventStore& store, int from, int count) {
  for (int i = from; i < from + count; ++i) {
    es::AppendRequest req;
    req.stream_id = stream_of(i);
    req.events.push_back({.event_id = uuid_v7(),
                          .type = "Tested",
                          .data = "{\"i\":" + std::to_string(i) + "}",
                          .metadata = R"({"correlation_id":"c-)" + std::to_string(i) +
                                      R"(","causation_id":"k-1","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})"});
    auto appended = store.append(std::move(req));
    ASSERT_TRUE(appended) << appended.error().message;
  }
}

// What the bus holds, checked against the log: every event there, each stream's in version
// order once repeats of a (stream, version) already seen are dropped, with the right
// subject, key, headers and body; each message (repeats too, across relay restarts) names
// the event before it in the log. Answers how many messages were repeats.
std::size_t check_bus_holds_log(BusUnderTest& bus, es::EventStore& store) {
  auto log = store.read_all(es::Position{1}, 1'000'000);
  EXPECT_TRUE(log);
  std::map<std::string, es::RecordedEvent> by_id;
  std::map<es::Position, es::Position> previous;
  es::Position before{0};
  for (auto& e : *log) {
    previous[e.position] = before;
    before = e.position;
    by_id[e.event_id] = e;
  }
  std::map<es::StreamId, std::int64_t> next_version;
  std::set<std::string> seen;
  std::size_t repeats = 0;
  for (const auto& r : bus.read_all()) {
    const auto& id = r.headers.at("orderflow-event-id");
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      ADD_FAILURE() << "the bus holds an event the log does not: " << id;
      continue;
    }
    const auto& e = it->second;
    EXPECT_EQ(r.headers.at("orderflow-previous-position"), to_string(previous[e.position]))
        << "message of position " << e.position;
    if (!seen.insert(id).second) {
      ++repeats;
      continue;
    }
    EXPECT_EQ(e.version, next_version[e.stream_id]++) << "stream " << e.stream_id << " out of order on the bus";
    EXPECT_EQ(r.topic, "orderflow.events." + std::string(e.stream_id.category()));
    if (bus.name() == "kafka") {
      EXPECT_EQ(r.key, e.stream_id);
    }
    EXPECT_EQ(r.headers.at("orderflow-stream-id"), e.stream_id);
    EXPECT_EQ(r.headers.at("orderflow-type"), e.type);
    EXPECT_EQ(r.headers.at("orderflow-version"), to_string(e.version));
    EXPECT_EQ(r.headers.at("orderflow-position"), to_string(e.position));
    EXPECT_EQ(r.headers.at("orderflow-schema-version"), "1");
    EXPECT_EQ(r.headers.at("orderflow-causation-id"), "k-1");
    EXPECT_EQ(r.headers.at("traceparent"), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    std::string json;
    codec::append_event_json(json, e);
    EXPECT_EQ(r.body, json);
  }
  EXPECT_EQ(seen.size(), log->size()) << "events of the log missing on the bus";
  if (bus.dedupes_by_id()) {
    EXPECT_EQ(repeats, 0u) << "JetStream stored an event id twice inside its window";
  }
  return repeats;
}

class RelayContract : public ::testing::TestWithParam<std::pair<const char*, BusFactory>> {
 protected:
  void SetUp() override {
    bus_ = GetParam().second();
    open_store();
  }
  void open_store() {
    store_ = open_sqlite_store(dir_.file("events.db"));
    ASSERT_TRUE(store_);
  }
  std::unique_ptr<app::relay::Relay> make_relay(es::BusPublisher& publisher) {
    return std::make_unique<app::relay::Relay>(*store_, *store_, publisher,
                                               app::relay::RelayOptions{.bus = bus_->url()});
  }
  bool caught_up(const app::relay::Relay& relay) {
    auto last = store_->last_position();
    return last && relay.status().position == *last;
  }

  TempDir dir_;
  std::unique_ptr<BusUnderTest> bus_;
  std::unique_ptr<sqlite::SqliteEventStore> store_;
};

TEST_P(RelayContract, EveryEventOnceInOrderPerStreamWithItsHeadersAndBody) {
  append_events(*store_, 0, 3000);  // a backlog: relayed in batches
  auto publisher = publisher_for(*bus_);
  auto relay = make_relay(*publisher);
  relay->start();
  append_events(*store_, 3000, 1000);  // live
  ASSERT_TRUE(wait_until([&] { return caught_up(*relay); }, 60s)) << relay->status().last_error.value_or("");
  EXPECT_EQ(relay->status().state, "publishing");
  EXPECT_EQ(relay->status().published, 4000u);
  relay->stop();
  EXPECT_EQ(*store_->load_checkpoint("relay"), 4000) << "the checkpoint is what the bus acknowledged";
  EXPECT_EQ(check_bus_holds_log(*bus_, *store_), 0u);
  EXPECT_EQ(bus_->count(), 4000u);
}

TEST_P(RelayContract, BusDownWhileWritingThenBackCatchesUpLosingNothing) {
  auto publisher = publisher_for(*bus_);
  auto relay = make_relay(*publisher);
  relay->start();
  append_events(*store_, 0, 1000);
  ASSERT_TRUE(wait_until([&] { return caught_up(*relay); }, 60s)) << relay->status().last_error.value_or("");
  bus_->stop();
  append_events(*store_, 1000, 2000);  // writes go on: the log is the outbox
  ASSERT_TRUE(wait_until([&] { return relay->status().state == "retrying"; }, 60s))
      << "the relay did not notice the bus was gone";
  EXPECT_TRUE(relay->status().last_error);
  EXPECT_LT(relay->status().position, 3000);
  bus_->start();
  ASSERT_TRUE(wait_until([&] { return caught_up(*relay); }, 90s)) << relay->status().last_error.value_or("");
  EXPECT_EQ(relay->status().state, "publishing");
  EXPECT_FALSE(relay->status().last_error);
  relay->stop();
  check_bus_holds_log(*bus_, *store_);
}

TEST_P(RelayContract, RelayProcessKilledMidRelayResumesFromItsCheckpoint) {
  constexpr int kEvents = 20000;
  append_events(*store_, 0, kEvents);
  store_.reset();  // the server holds it now
  auto serve = [&] { return spawn_serve(dir_.path().string(), "relay", bus_->url()); };
  pid_t pid = serve();
  // Killed once the bus holds a quarter of the log (on an event count, not a timer).
  ASSERT_TRUE(wait_until([&] { return bus_->count() >= kEvents / 4; }, 60s));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  const auto at_kill = bus_->count();
  EXPECT_LT(at_kill, static_cast<std::size_t>(kEvents)) << "killed too late to prove anything";
  pid = serve();
  // Caught up: the bus holds the whole log (with Kafka's repeats, more) and has stopped growing.
  std::size_t held = 0;
  auto steady_since = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until(
      [&] {
        if (auto n = bus_->count(); n != held) {
          held = n;
          steady_since = std::chrono::steady_clock::now();
        }
        return held >= kEvents && std::chrono::steady_clock::now() - steady_since > 3s;
      },
      120s))
      << "held " << held;
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  open_store();
  EXPECT_EQ(*store_->load_checkpoint("relay"), kEvents);
  const auto repeats = check_bus_holds_log(*bus_, *store_);
  // What a kill can double: the batch in flight (1000 events at most), never more.
  EXPECT_LE(repeats, 1000u);
  std::printf("%s: killed with %zu of %d events on the bus; %zu stored twice\n", bus_->name().c_str(), at_kill,
              kEvents, repeats);
}

INSTANTIATE_TEST_SUITE_P(Buses, RelayContract,
                         ::testing::Values(std::pair<const char*, BusFactory>{"nats", start_nats},
                                           std::pair<const char*, BusFactory>{"kafka", start_kafka}),
                         [](const auto& info) { return std::string(info.param.first); });

}  // namespace
}  // namespace orderflow::testing
