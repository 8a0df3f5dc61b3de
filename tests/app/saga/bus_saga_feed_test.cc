// The reorder buffer of the saga fed from the bus (app/saga/bus_saga_feed.h): whatever order
// the bus delivers in (streams interleaved any way, each stream in order, repeats), the
// events are released in the log's exact order, positions that are not events included.
// The feed's dead letters, on a bus in memory: a message delivered again after its
// dead-letter publish failed is recorded once; and the claim on their tables goes with the
// saga's lease to the process that runs the saga next (on PostgreSQL).
#include "app/saga/bus_saga_feed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "app/command_handler.h"
#include "app/projections/read_model_backends.h"
#include "app/saga/saga_runner.h"
#include "app/saga/sim_event_store.h"

namespace orderflow::app::saga {
namespace {

struct Logged {
  es::RecordedEvent event;
  es::Position previous{0};
};

// A log of `n` events over `streams` streams, with holes between positions (as a
// PostgreSQL sequence may leave them).
std::vector<Logged> make_log(int n, int streams, std::mt19937_64& rng) {
  std::vector<Logged> log;
  std::map<int, std::int64_t> versions;
  es::Position position{0}, previous{0};
  for (int i = 0; i < n; ++i) {
    position = position + static_cast<std::int64_t>(1 + (rng() % 4 == 0 ? rng() % 3 : 0));
    const int s = static_cast<int>(rng() % streams);
    es::RecordedEvent e;
    e.stream_id = es::StreamId("order-" + std::to_string(s));
    e.version = es::StreamVersion{versions[s]++};
    e.position = position;
    e.event_id = "e" + std::to_string(position.value());
    log.push_back({e, previous});
    previous = position;
  }
  return log;
}

// The bus's delivery: each stream's messages in order, streams interleaved at random.
std::vector<const Logged*> shuffle_across_streams(const std::vector<Logged>& log, std::mt19937_64& rng) {
  std::map<std::string, std::vector<const Logged*>> by_stream;
  for (const auto& l : log) by_stream[l.event.stream_id.str()].push_back(&l);
  std::vector<std::pair<std::string, std::size_t>> cursor;
  for (const auto& [s, events] : by_stream) cursor.emplace_back(s, 0);
  std::vector<const Logged*> out;
  while (!cursor.empty()) {
    const auto i = rng() % cursor.size();
    auto& [s, at] = cursor[i];
    out.push_back(by_stream[s][at++]);
    if (at == by_stream[s].size()) cursor.erase(cursor.begin() + static_cast<std::ptrdiff_t>(i));
  }
  return out;
}

TEST(ReorderBuffer, ReleasesAShuffledDeliveryInTheLogsExactOrder) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const auto log = make_log(2000, 37, rng);
    const auto delivered = shuffle_across_streams(log, rng);
    std::size_t out_of_order = 0;
    for (std::size_t i = 1; i < delivered.size(); ++i)
      if (delivered[i]->event.position < delivered[i - 1]->event.position) ++out_of_order;
    ASSERT_GT(out_of_order, 500u) << "the delivery is shuffled";

    ReorderBuffer buffer(es::Position{1});
    std::vector<es::Position> released;
    std::size_t acked = 0, most_held = 0;
    std::uint64_t tag = 0;
    auto drain = [&] {
      for (;;) {
        auto ready = buffer.ready(1 + rng() % 50);  // batches of any size
        if (ready.events.empty()) return;
        for (const auto& e : ready.events) released.push_back(e.position);
        acked += buffer.release(ready.next).size();
      }
    };
    for (const auto* l : delivered) {
      ASSERT_TRUE(buffer.add(l->event, l->previous, ++tag));
      if (rng() % 5 == 0) {
        ASSERT_TRUE(buffer.add(l->event, l->previous, ++tag));  // a redelivery before its turn
      }
      most_held = std::max(most_held, buffer.size());
      drain();
      // Redeliveries of what was released are repeats, acknowledged at once.
      if (!released.empty() && rng() % 7 == 0) {
        es::RecordedEvent again;
        again.position = released[rng() % released.size()];
        EXPECT_FALSE(buffer.add(again, std::nullopt, ++tag));
      }
    }
    std::vector<es::Position> expected;
    for (const auto& l : log) expected.push_back(l.event.position);
    EXPECT_EQ(released, expected) << "seed " << seed;
    EXPECT_EQ(buffer.size(), 0u);
    EXPECT_FALSE(buffer.gap());
    EXPECT_EQ(buffer.next(), log.back().event.position + 1);
    EXPECT_GT(most_held, 1u) << "events waited for their turn";
    EXPECT_GE(acked, log.size());  // every copy of every event held is acknowledged once released
  }
}

TEST(ReorderBuffer, AnEventWaitsForItsPreviousPositionAndAGapIsShownUntilItComes) {
  ReorderBuffer buffer(es::Position{10});
  es::RecordedEvent a, b, c;
  a.position = es::Position{12};  // previous 10: 11 is not an event
  b.position = es::Position{15};  // previous 12
  c.position = es::Position{10};  // previous 7 (below next: folded)
  EXPECT_TRUE(buffer.add(b, es::Position{12}, 1));
  EXPECT_TRUE(buffer.ready(10).events.empty());
  EXPECT_EQ(buffer.gap(), es::Position{15});
  EXPECT_TRUE(buffer.add(a, es::Position{10}, 2));
  EXPECT_EQ(buffer.gap(), es::Position{12});  // 10 is still awaited
  EXPECT_TRUE(buffer.add(c, es::Position{7}, 3));
  auto ready = buffer.ready(10);
  ASSERT_EQ(ready.events.size(), 3u);
  EXPECT_EQ(ready.events[0].position, es::Position{10});
  EXPECT_EQ(ready.events[2].position, es::Position{15});
  EXPECT_EQ(ready.next, es::Position{16});
  EXPECT_EQ(buffer.release(ready.next), (std::vector<std::uint64_t>{3, 2, 1}));
  EXPECT_FALSE(buffer.gap());
}

TEST(ReorderBuffer, WithoutAPreviousPositionOnlyTheNextPositionIsReleasedAndTheStoreFillsTheRest) {
  ReorderBuffer buffer(es::Position{1});
  es::RecordedEvent e;
  e.position = es::Position{3};  // an older relay's message: no previous position
  EXPECT_TRUE(buffer.add(e, std::nullopt, 7));
  EXPECT_TRUE(buffer.ready(10).events.empty());
  EXPECT_EQ(buffer.gap(), es::Position{3});
  // What the feed does once the gap has waited: folds the store's events 1..3, then releases.
  EXPECT_EQ(buffer.release(es::Position{4}), (std::vector<std::uint64_t>{7}));
  EXPECT_EQ(buffer.next(), es::Position{4});
  EXPECT_EQ(buffer.size(), 0u);
  e.position = es::Position{4};
  EXPECT_TRUE(buffer.add(e, std::nullopt, 8));
  EXPECT_EQ(buffer.ready(10).events.size(), 1u);
}

// A bus in memory with one durable consumer, shared by the consumers made on it (one per
// process that runs the saga): every fetch delivers again each message neither
// acknowledged nor dead-lettered (as a retry does), under a new tag and with its id. While
// `refuse_dead_letters`, each message's first dead-letter publish fails (nothing published,
// nothing acknowledged).
class MemoryBus {
 public:
  bool refuse_dead_letters = false;

  void publish(es::BusDelivery d) {
    std::lock_guard lk(mu_);
    pending_.push_back(std::move(d));
  }
  std::vector<es::BusDelivery> deliver() {
    std::lock_guard lk(mu_);
    for (auto& d : pending_) {
      d.tag = next_tag_++;
      ++d.attempt;
    }
    return pending_;
  }
  Result<void> dead_letter(std::uint64_t tag) {
    std::lock_guard lk(mu_);
    auto it = std::find_if(pending_.begin(), pending_.end(), [&](const auto& d) { return d.tag == tag; });
    if (it == pending_.end()) return {};
    if (refuse_dead_letters && refused_.insert(it->id).second)
      return fail(Errc::unavailable, "the dead-letter subject did not acknowledge " + it->id);
    ++dead_lettered_;
    pending_.erase(it);
    return {};
  }
  void ack(std::span<const std::uint64_t> tags) {
    std::lock_guard lk(mu_);
    std::erase_if(pending_, [&](const auto& d) { return std::find(tags.begin(), tags.end(), d.tag) != tags.end(); });
  }
  std::size_t dead_lettered() {
    std::lock_guard lk(mu_);
    return dead_lettered_;
  }
  std::size_t refused() {
    std::lock_guard lk(mu_);
    return refused_.size();
  }

 private:
  std::mutex mu_;
  std::vector<es::BusDelivery> pending_;
  std::uint64_t next_tag_ = 1;
  std::size_t dead_lettered_ = 0;
  std::set<std::string> refused_;  // the ids of the messages whose dead-letter publish failed
};

class MemoryConsumer final : public es::BusConsumer {
 public:
  explicit MemoryConsumer(MemoryBus& bus) : bus_(bus) {}
  Result<std::vector<es::BusDelivery>> fetch(std::size_t max, std::chrono::milliseconds wait) override {
    auto out = bus_.deliver();
    if (out.empty()) std::this_thread::sleep_for(wait);
    if (out.size() > max) out.resize(max);
    return out;
  }
  Result<void> ack(std::span<const std::uint64_t> tags) override {
    bus_.ack(tags);
    return {};
  }
  Result<void> retry(std::uint64_t, std::chrono::milliseconds) override { return {}; }
  Result<void> dead_letter(std::uint64_t tag, const std::string&) override { return bus_.dead_letter(tag); }
  Result<std::uint64_t> backlog() override { return std::uint64_t{0}; }

 private:
  MemoryBus& bus_;
};

// A message the saga cannot decode (its body is not JSON), as the bus names it by `id`;
// with the headers of the event (`position`, in stream order-P at version 0) if `position`.
es::BusDelivery undecodable(const std::string& id, std::optional<std::int64_t> position) {
  es::BusDelivery d;
  d.topic = "orderflow.events.order";
  d.id = id;
  d.attempt = 0;
  d.body = "{not json";
  if (position) {
    const auto p = std::to_string(*position);
    d.headers = {{"orderflow-event-id", "e" + p},
                 {"orderflow-stream-id", "order-" + p},
                 {"orderflow-version", "0"},
                 {"orderflow-position", p}};
  }
  return d;
}

bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::vector<bus_projector::BusDeadLetter> recorded(es::ReadModelDb& db) {
  bus_projector::BusDeadLetterTables tables(db, bus_projector::kSagaDeadLetters);
  auto listed = tables.list();
  EXPECT_TRUE(listed) << listed.error().message;
  return listed ? *listed : std::vector<bus_projector::BusDeadLetter>{};
}

class BusSagaFeedDeadLetters : public ::testing::TestWithParam<testing::ReadModelBackend> {
 protected:
  void SetUp() override {
    if (auto why = place_.unavailable(); !why.empty()) GTEST_SKIP() << why;
  }
  BusSagaFeedOptions options(es::ReadModelDb& db) {
    return {.bus = "memory", .gap_wait = std::chrono::minutes(10), .dead_letter_db = &db};
  }

  testing::ReadModelPlace place_{GetParam()};
  std::mt19937_64 rng_{17};
  testing::SimEventStore store_{rng_};
  MemoryBus bus_;
};

// Each message's dead-letter publish fails once, so the feed records it, fails, and gets it
// again (after its back-off) to record it again: one dead letter a message all the same,
// named by its event when its headers say it, else by the bus's id of the message (two
// messages alike but for that stay two).
TEST_P(BusSagaFeedDeadLetters, AMessageDeliveredAgainAfterItsDeadLetterPublishFailedIsRecordedOnce) {
  auto db = place_.open();
  bus_.refuse_dead_letters = true;
  bus_.publish(undecodable("S:1", 1));
  bus_.publish(undecodable("S:2", std::nullopt));
  bus_.publish(undecodable("S:3", std::nullopt));
  MemoryConsumer consumer(bus_);
  BusSagaFeed feed(store_, consumer, options(*db), {"order"}, es::Position{1}, es::Position{0},
                   [](std::span<const es::RecordedEvent>, es::Position) { return Result<void>{}; });
  feed.start();
  ASSERT_TRUE(wait_until([&] { return bus_.dead_lettered() == 3; }, std::chrono::seconds(60)))
      << feed.status().last_error.value_or("");
  feed.stop();
  EXPECT_EQ(bus_.refused(), 3u) << "each message was recorded, refused by the bus and delivered again";
  const auto letters = recorded(*db);
  ASSERT_EQ(letters.size(), 3u) << "a dead letter per delivery, not per message";
  std::set<std::string> ids;
  for (const auto& l : letters) ids.insert(l.dead_letter_id);
  EXPECT_EQ(ids.size(), 3u);
  const auto named = std::find_if(letters.begin(), letters.end(), [](const auto& l) { return l.position; });
  ASSERT_NE(named, letters.end());
  EXPECT_EQ(named->event_id, "e1");
  EXPECT_EQ(named->stream_id, es::StreamId("order-1"));
  EXPECT_EQ(named->position, es::Position{1});
}

// A process's lease moves to another while it lives on (as when its connection to the
// store was slow): it stops running the saga and gives up the dead-letter tables' claim,
// so the new holder retries a dead letter the first recorded and records its own. Without
// the release the first process kept the claim: the other retried for ever.
TEST_P(BusSagaFeedDeadLetters, TheDeadLetterClaimGoesWithTheSagasLease) {
  if (GetParam() != testing::ReadModelBackend::postgres) GTEST_SKIP() << "a SQLite database is one process's own";
  std::atomic<int> holder{1};
  class Lease final : public es::LeaderLease {
   public:
    Lease(std::atomic<int>& holder, int me) : holder_(holder), me_(me) {}
    Result<bool> hold() override { return holder_ == me_; }
    void release() override {}

   private:
    std::atomic<int>& holder_;
    int me_;
  };
  struct Process {
    std::unique_ptr<es::ReadModelDb> db;
    std::unique_ptr<CommandHandler> commands;
    std::unique_ptr<Lease> lease;
    std::unique_ptr<SagaRunner> saga;
  };
  auto process = [&](int me) {
    Process p{place_.open(), std::make_unique<CommandHandler>(store_, &store_),
              std::make_unique<Lease>(holder, me), nullptr};
    p.saga = std::make_unique<SagaRunner>(*p.commands, &store_, SagaOptions{}, p.lease.get());
    p.saga->feed_from_bus({.open_consumer = [this] { return std::make_unique<MemoryConsumer>(bus_); },
                           .options = options(*p.db)});
    EXPECT_TRUE(p.saga->start());
    return p;
  };
  auto first = process(1), second = process(2);
  bus_.publish(undecodable("S:1", std::nullopt));
  ASSERT_TRUE(wait_until([&] { return bus_.dead_lettered() == 1; }, std::chrono::seconds(60)))
      << first.saga->bus_status()->last_error.value_or("");
  const auto letters = recorded(*first.db);
  ASSERT_EQ(letters.size(), 1u);

  holder = 2;
  ASSERT_TRUE(wait_until([&] { return second.saga->bus_status()->state == "consuming"; }, std::chrono::seconds(60)));
  ASSERT_TRUE(wait_until([&] { return first.saga->bus_status()->state == "standby"; }, std::chrono::seconds(60)));
  std::promise<Result<bus_projector::Redriven>> retried;
  second.saga->redrive(letters.front().dead_letter_id, "operator",
                       [&](Result<bus_projector::Redriven> r) { retried.set_value(std::move(r)); });
  auto done = retried.get_future().get();
  EXPECT_TRUE(done) << done.error().message;
  bus_.publish(undecodable("S:2", std::nullopt));
  EXPECT_TRUE(wait_until([&] { return bus_.dead_lettered() == 2; }, std::chrono::seconds(30)))
      << second.saga->bus_status()->last_error.value_or("");
  EXPECT_EQ(recorded(*second.db).size(), 2u);
  second.saga->stop();
  first.saga->stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, BusSagaFeedDeadLetters,
                         ::testing::Values(testing::ReadModelBackend::sqlite, testing::ReadModelBackend::postgres),
                         testing::backend_name);

}  // namespace
}  // namespace orderflow::app::saga
