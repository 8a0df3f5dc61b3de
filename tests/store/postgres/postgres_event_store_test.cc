#include "store/postgres/postgres_event_store.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "es/event_hash.h"
#include "es/event_store_contract.h"
#include "es/subscription.h"
#include "store/postgres/test_database.h"

namespace orderflow::testing {
namespace {

using es::ExpectedVersion;
using postgres::PostgresEventStore;

Result<std::unique_ptr<PostgresEventStore>> try_open(const std::string& schema,
                                                     const es::UpcasterRegistry* upcasters = nullptr,
                                                     const std::string& conninfo = test_server()) {
  postgres::PostgresEventStoreOptions options;
  options.conninfo = conninfo;
  options.schema = schema;
  options.upcasters = upcasters;
  options.verify_at_open = kVerifiedAtOpen;
  return PostgresEventStore::open(options);
}

std::unique_ptr<PostgresEventStore> open_store(const std::string& schema,
                                               const es::UpcasterRegistry* upcasters = nullptr,
                                               const std::string& conninfo = test_server()) {
  auto store = try_open(schema, upcasters, conninfo);
  if (!store) throw std::runtime_error(store.error().message);
  return std::move(*store);
}

class PostgresHarness : public StoreHarness {
 public:
  PostgresHarness() : store_(open_store(schema_.name())) {}
  es::EventStore& store() override { return *store_; }
  es::SnapshotStore& snapshots() override { return *store_; }
  es::CheckpointStore& checkpoints() override { return *store_; }
  es::StoredLog& log() override { return *store_; }
  es::IdempotencyRecords* idempotency_records() override { return store_.get(); }
  void reopen(const es::UpcasterRegistry* upcasters) override {
    store_.reset();
    store_ = open_store(schema_.name(), upcasters);
  }
  Result<void> tamper(es::Position position, const std::string& original, const std::string& replacement) override {
    store_.reset();
    OF_ASSIGN_OR_RETURN(
        auto changed,
        schema_.connect().query(
            {"UPDATE events SET data = replace(data, $2, $3), metadata = replace(metadata, $2, $3), "
             "type = replace(type, $2, $3) WHERE position = $1 AND (data || metadata || type) LIKE '%' || $2 || '%' "
             "RETURNING position",
             {to_string(position), original, replacement}}));
    if (changed.rows() != 1) return fail(Errc::internal, original + " is not in the event at that position");
    OF_ASSIGN_OR_RETURN(auto opened, try_open(schema_.name()));
    store_ = std::move(opened);
    return {};
  }
  Result<void> tamper_snapshot(const std::string& stream_id, const std::string& original,
                               const std::string& replacement) override {
    OF_ASSIGN_OR_RETURN(auto changed, schema_.connect().query(
                                          {"UPDATE snapshots SET state = replace(state, $2, $3) WHERE stream_id = $1 "
                                           "AND state LIKE '%' || $2 || '%' RETURNING stream_id",
                                           {stream_id, original, replacement}}));
    if (changed.rows() != 1) return fail(Errc::internal, original + " is not in the snapshot of " + stream_id);
    return {};
  }

 private:
  TestSchema schema_;
  std::unique_ptr<PostgresEventStore> store_;
};

void skip_without_server() {
  if (!test_server()) GTEST_SKIP() << "ORDERFLOW_TEST_PG is not set (scripts/pg-test-server.sh sets it)";
}

std::unique_ptr<StoreHarness> make_harness() {
  skip_without_server();
  return test_server() ? std::make_unique<PostgresHarness>() : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Postgres, EventStoreContract,
                         ::testing::Values(EventStoreContractParam{"postgres", make_harness}),
                         [](const auto& info) { return info.param.name; });

class PostgresEventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { skip_without_server(); }
};

// Polls until `done` or 20 s pass.
template <class F>
void eventually(F done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// The server processes of the connections named `app` (pid and start time): equal before
// and after, no connection was lost and opened again.
std::string backends_of(postgres::Connection& watcher, const std::string& app) {
  auto r = watcher.query({"SELECT string_agg(pid::text || '/' || backend_start::text, ',' ORDER BY pid) "
                          "FROM pg_stat_activity WHERE application_name = $1",
                          {app}});
  return r ? std::string(r->text(0, 0)) : std::string("?");
}

// Events stored before migration 2 get the chain computed in SQL at the next open, the same
// hashes the store computes: every one checks, and appends chain on from the head.
TEST_F(PostgresEventStoreTest, EventsStoredBeforeTheHashChainGetItFromTheMigration) {
  TestSchema schema;
  {
    auto store = open_store(schema.name());
    for (int i = 0; i < 5; ++i) {
      auto req = make_append(es::StreamId("m-" + std::to_string(i % 2)), ExpectedVersion::any(), 3);
      req.events[1].data = R"({"text":"naïve ünïcode"})";
      req.events[2].metadata = "";
      ASSERT_TRUE(store->append(req));
    }
  }
  auto c = schema.connect();
  ASSERT_TRUE(c.exec("ALTER TABLE events DROP COLUMN prev_hash, DROP COLUMN hash; "
                     "ALTER TABLE log_head DROP COLUMN hash; ALTER TABLE snapshots DROP COLUMN checksum; "
                     "DROP TABLE customer_keys; DROP INDEX idempotency_created_at; "
                     "DELETE FROM schema_migrations WHERE version >= 2"));
  auto store = open_store(schema.name());
  std::vector<std::string> breaks;
  es::check_chain(*store, breaks);
  EXPECT_TRUE(breaks.empty()) << ::testing::PrintToString(breaks);
  ASSERT_TRUE(store->append(make_append("m-0", ExpectedVersion::any(), 2)));
  ASSERT_TRUE(store->read_all(es::Position{1}, 100));
  es::check_chain(*store, breaks);
  EXPECT_TRUE(breaks.empty()) << ::testing::PrintToString(breaks);
}

// Another process's batch takes position 2 and stays uncommitted while this store
// appends more. No reader may pass position 2 until it commits: the later appends wait
// for it, and the subscriber sees 1, 2, 3, … with nothing skipped.
// Opens a transaction on `held` that takes the log head's lock, as another process's
// batch would, and (with an event id) appends one event at version 0 of `stream`, chained
// on as a store would so that readers serve it once it commits. Answers the position the
// head was at.
Result<es::Position> hold_head_writing(postgres::Connection& held, const std::string& event_id = "",
                                       const std::string& stream = "") {
  OF_RETURN_IF_ERROR(held.exec("BEGIN"));
  OF_ASSIGN_OR_RETURN(auto head, held.query({"SELECT position, encode(hash, 'hex') FROM log_head FOR UPDATE", {}}));
  const es::Position at{head.int64(0, 0)};
  if (event_id.empty()) return at;
  es::EventHash prev{};
  if (!es::hash_from_hex(head.text(0, 1), prev)) return fail(Errc::corrupt, "the head's hash is malformed");
  const auto hash =
      es::to_hex(es::event_hash(prev, {at + 1, event_id, stream, es::StreamVersion{0}, "Held", 1, "{}", "{}", 0}));
  OF_RETURN_IF_ERROR(held.exec("INSERT INTO events VALUES (" + to_string(at + 1) + ", '" + event_id + "', '" + stream +
                               "', 0, 'Held', 1, '{}', '{}', 0, decode('" + es::to_hex(prev) + "', 'hex'), decode('" +
                               hash + "', 'hex')); UPDATE log_head SET position = " + to_string(at + 1) +
                               ", hash = decode('" + hash + "', 'hex')"));
  return at;
}

TEST_F(PostgresEventStoreTest, NoReaderPassesAPositionWhoseTransactionIsStillOpen) {
  TestSchema schema;
  auto store = open_store(schema.name());
  ASSERT_TRUE(store->append(make_append("skip-1", ExpectedVersion::any())));

  std::vector<es::Position> seen;
  std::mutex mu;
  es::Subscription sub(*store, nullptr, {"skip", es::Position{1}, {}, 100, std::chrono::milliseconds(20)},
                       [&](std::span<const es::RecordedEvent> batch, es::Position) -> Result<void> {
                         std::lock_guard lk(mu);
                         for (const auto& e : batch) seen.push_back(e.position);
                         return {};
                       });
  ASSERT_TRUE(sub.start());

  auto held = schema.connect();
  ASSERT_TRUE(hold_head_writing(held, "held-event", "skip-2"));

  constexpr int kLater = 3;
  std::atomic<int> answered{0};
  std::vector<es::Position> later_positions(kLater);
  for (int i = 0; i < kLater; ++i)
    store->append_async(make_append("skip-3", ExpectedVersion::any()), [&, i](Result<es::AppendResult> r) {
      ASSERT_TRUE(r) << r.error().message;
      later_positions[static_cast<std::size_t>(i)] = r->position;
      ++answered;
    });

  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(answered.load(), 0) << "an append committed past an open lower position";
  EXPECT_EQ(*store->last_position(), 1);
  std::vector<es::Position> scanned;
  auto next = store->scan_all(es::Position{1}, 100, {}, [&](const es::RecordedEvent& e) { scanned.push_back(e.position); });
  ASSERT_TRUE(next);
  EXPECT_EQ(scanned, std::vector{es::Position{1}});
  EXPECT_EQ(*next, 2);
  {
    std::lock_guard lk(mu);
    EXPECT_EQ(seen, std::vector{es::Position{1}});
  }

  ASSERT_TRUE(held.exec("COMMIT"));
  eventually([&] { return answered == kLater && sub.position() > 2 + kLater; });
  sub.stop();
  ASSERT_EQ(answered.load(), kLater);
  std::sort(later_positions.begin(), later_positions.end());
  EXPECT_EQ(later_positions, (std::vector{es::Position{3}, es::Position{4}, es::Position{5}}));
  std::lock_guard lk(mu);
  EXPECT_EQ(seen, (std::vector{es::Position{1}, es::Position{2}, es::Position{3}, es::Position{4}, es::Position{5}}));
}

// Two stores on one database, as two processes would be, race for the same streams with
// exact expected versions while a reader follows the log through each of them.
TEST_F(PostgresEventStoreTest, TwoStoresOnOneDatabaseAgreeOnVersionsAndPositions) {
  TestSchema schema;
  auto a = open_store(schema.name());
  auto b = open_store(schema.name());
  constexpr int kStreams = 4, kWritersPerStore = 6, kAttempts = 25;

  std::mutex mu;
  std::map<std::pair<int, es::StreamVersion>, int> winners;  // (stream, version) -> wins
  std::atomic<bool> writing{true};
  std::vector<std::thread> threads;
  for (auto* store : {a.get(), b.get()})
    for (int w = 0; w < kWritersPerStore; ++w)
      threads.emplace_back([&, store, w] {
        std::map<int, es::StreamVersion> expected;
        for (int i = 0; i < kAttempts; ++i) {
          int s = (w + i) % kStreams;
          auto v = expected.count(s) ? expected[s] : es::kNoStream;
          auto r = store->append(make_append(es::StreamId("race-" + std::to_string(s)),
                                             v == es::kNoStream ? ExpectedVersion::no_stream()
                                                                : ExpectedVersion::exact(v)));
          if (r) {
            std::lock_guard lk(mu);
            ++winners[{s, r->version}];
            expected[s] = r->version;
          } else {
            ASSERT_EQ(r.error().code, Errc::version_conflict) << r.error().message;
            ASSERT_TRUE(r.error().current_version.has_value());
            expected[s] = *r.error().current_version;
          }
        }
      });

  // Readers by position, one per store: each batch must continue exactly where the last
  // one ended; a position seen missing and filled in later would break that.
  std::vector<std::string> reader_errors;
  std::vector<std::thread> readers;
  for (auto* store : {a.get(), b.get()})
    readers.emplace_back([&, store] {
      es::Position cursor{1};
      for (bool last_round = false; !last_round;) {
        last_round = !writing;
        auto next = store->scan_all(cursor, 1000, {}, [&](const es::RecordedEvent& e) {
          if (e.position != cursor) {
            std::lock_guard lk(mu);
            reader_errors.push_back("expected " + to_string(cursor) + ", read " + to_string(e.position));
          }
          cursor = e.position + 1;
        });
        if (!next) {
          std::lock_guard lk(mu);
          reader_errors.push_back(next.error().message);
          return;
        }
      }
    });
  for (auto& t : threads) t.join();
  writing = false;
  for (auto& t : readers) t.join();
  EXPECT_TRUE(reader_errors.empty()) << reader_errors.front();

  for (const auto& [key, wins] : winners) EXPECT_EQ(wins, 1) << "stream " << key.first << " version " << key.second;
  std::size_t total = 0;
  for (int s = 0; s < kStreams; ++s) {
    auto events = *a->read_stream(es::StreamId("race-" + std::to_string(s)), es::StreamVersion{0}, 100000, es::Direction::forward);
    for (std::size_t v = 0; v < events.size(); ++v) ASSERT_EQ(events[v].version, static_cast<es::StreamVersion>(v));
    total += events.size();
  }
  EXPECT_EQ(total, winners.size());
  auto all = *b->read_all(es::Position{1}, 100000);
  ASSERT_EQ(all.size(), total);
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i].position, static_cast<es::Position>(i + 1));
  EXPECT_GT(total, std::size_t{kStreams * 5}) << "too few appends won to show anything";
}

// A store decides from memory while it wrote the log last; an append by another
// process in between is noticed (the head's xmin is not its own), so the first store
// neither accepts a stale expected version nor numbers from a stale version or head.
TEST_F(PostgresEventStoreTest, AStoreNoticesAnotherProcessWroteSinceItsLastBatch) {
  TestSchema schema;
  auto a = open_store(schema.name());
  auto b = open_store(schema.name());
  for (es::StreamVersion v{-1}; v < 3; ++v)  // enough batches for `a` to decide ahead
    ASSERT_TRUE(a->append(make_append("ahead-1", v < 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exact(v))));
  ASSERT_TRUE(b->append(make_append("ahead-1", ExpectedVersion::exact(es::StreamVersion{3}))));
  auto stale = a->append(make_append("ahead-1", ExpectedVersion::exact(es::StreamVersion{3})));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Errc::version_conflict);
  EXPECT_EQ(stale.error().current_version, 4);
  ASSERT_TRUE(b->append(make_append("ahead-1", ExpectedVersion::exact(es::StreamVersion{4}))));
  auto any = a->append(make_append("ahead-1", ExpectedVersion::any()));
  ASSERT_TRUE(any) << any.error().message;
  EXPECT_EQ(any->version, 6);
  EXPECT_EQ(any->position, 7);
  auto again = a->append(make_append("ahead-1", ExpectedVersion::exact(es::StreamVersion{6})));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->position, 8);
}

// A batch decided ahead with streams memory does not know (another process wrote one,
// nobody the other) reads their versions before it takes the lock: each is numbered on
// from what is stored, a stale expected version is refused, and no write is refused by the
// database (which would cost the connection).
TEST_F(PostgresEventStoreTest, StreamsUnknownToABatchDecidedAheadAreNumberedFromWhatIsStored) {
  TestSchema schema;
  const std::string app = "of_unknown_" + schema.name().substr(5);
  auto a = open_store(schema.name(), nullptr, std::string(test_server()) + "?application_name=" + app);
  auto b = open_store(schema.name());
  ASSERT_TRUE(b->append(make_append("elsewhere-1", ExpectedVersion::no_stream(), 2)));
  for (es::StreamVersion v{-1}; v < 3; ++v)  // enough batches for `a` to decide ahead
    ASSERT_TRUE(a->append(make_append("ahead-5", v < 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exact(v))));
  auto watcher = schema.connect();
  auto backends = [&] { return backends_of(watcher, app); };
  const auto connections = backends();

  auto stale = a->append(make_append("elsewhere-1", ExpectedVersion::no_stream()));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Errc::version_conflict);
  EXPECT_EQ(stale.error().current_version, 1);
  auto any = a->append(make_append("elsewhere-1", ExpectedVersion::any()));
  ASSERT_TRUE(any) << any.error().message;
  EXPECT_EQ(any->version, 2);
  EXPECT_EQ(any->position, 7);
  auto fresh = a->append(make_append("nobody-1", ExpectedVersion::no_stream()));
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_EQ(fresh->version, 0);
  EXPECT_EQ(fresh->position, 8);
  EXPECT_EQ(backends(), connections) << "a connection was lost and opened again";
  EXPECT_EQ(b->read_stream(es::StreamId("elsewhere-1"), es::StreamVersion{0}, 10, es::Direction::forward)->size(), 3u);
}

// A retry that reaches the other process finds the append the first one stored.
TEST_F(PostgresEventStoreTest, ARetryThroughAnotherProcessGetsTheOriginalResult) {
  TestSchema schema;
  auto a = open_store(schema.name());
  auto b = open_store(schema.name());
  auto req = make_append("retry-1", ExpectedVersion::no_stream(), 2);
  auto first = a->append(req);
  ASSERT_TRUE(first);
  auto again = b->append(req);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->position, first->position);
  EXPECT_EQ(*b->last_position(), 2);
}

// A batch decided ahead meets stored event ids and keys (looked up before it inserts): a
// retried append gets its original result, a reused id duplicate_event, a reused key
// idempotency_key_reused, as under the lock, with no row refused (so no connection lost
// and opened again), and the batches around them are written.
TEST_F(PostgresEventStoreTest, StoredIdsAndKeysMetByABatchDecidedAheadAreAnsweredAsUnderTheLock) {
  TestSchema schema;
  const std::string app = "of_ahead_" + schema.name().substr(5);
  auto store = open_store(schema.name(), nullptr, std::string(test_server()) + "?application_name=" + app);
  auto watcher = schema.connect();
  auto backends = [&] { return backends_of(watcher, app); };
  auto keyed = [](es::AppendRequest req, const std::string& key) {
    req.idempotency = es::IdempotencyRecord{key, "fingerprint", 201, "{}", 0};
    return req;
  };
  es::AppendRequest first;
  for (es::StreamVersion v{-1}; v < 3; ++v) {  // enough batches for the store to decide ahead
    first = keyed(make_append("ahead-3", ExpectedVersion::any()), "key-" + to_string(v));
    ASSERT_TRUE(store->append(first));
  }
  const auto connections = backends();

  auto again = store->append(first);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->position, 4);
  EXPECT_EQ(again->version, 3);
  auto clash = make_append("ahead-4", ExpectedVersion::any());
  clash.events[0].event_id = first.events[0].event_id;
  auto duplicate = store->append(clash);
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().code, Errc::duplicate_event);
  auto reused = store->append(keyed(make_append("ahead-4", ExpectedVersion::any()), "key-2"));
  ASSERT_FALSE(reused);
  EXPECT_EQ(reused.error().code, Errc::idempotency_key_reused);
  for (int i = 0; i < 3; ++i) {  // the store finds its own xmin again and decides ahead
    auto next = store->append(make_append("ahead-3", ExpectedVersion::exact(es::StreamVersion{3 + i})));
    ASSERT_TRUE(next) << next.error().message;
    EXPECT_EQ(next->position, 5 + i);
  }
  EXPECT_EQ(backends(), connections) << "a connection was lost and opened again";
  EXPECT_EQ(store->read_all(es::Position{1}, 100)->size(), 7u);
}

// The server drops every connection of a store while they are idle (as a restart
// would). The store notices on next use and carries on with new connections: no append
// or read fails for it.
TEST_F(PostgresEventStoreTest, ConnectionsLostWhileIdleAreReplacedWithoutFailingAnything) {
  TestSchema schema;
  const std::string app = "of_" + schema.name();
  auto store = open_store(schema.name(), nullptr, std::string(test_server()) + "?application_name=" + app);
  ASSERT_TRUE(store->append(make_append("lost-1", ExpectedVersion::no_stream())));
  ASSERT_TRUE(store->append(make_append("lost-1", ExpectedVersion::exact(es::StreamVersion{0}))));  // both lanes connected

  auto admin = schema.connect();
  auto killed = admin.query({"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                             {app}});
  ASSERT_TRUE(killed);
  ASSERT_EQ(killed->int64(0, 0), 3) << "the store's reader and its two writer connections";
  eventually([&] {
    auto left = admin.query({"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", {app}});
    return left && left->int64(0, 0) == 0;
  });

  for (int i = 0; i < 3; ++i) {
    auto r = store->append(make_append("lost-1", ExpectedVersion::exact(es::StreamVersion{1 + i})));
    ASSERT_TRUE(r) << r.error().message;
  }
  auto events = store->read_stream("lost-1", es::StreamVersion{0}, 100, es::Direction::forward);
  ASSERT_TRUE(events) << events.error().message;
  ASSERT_EQ(events->size(), 5u);
  for (std::size_t v = 0; v < events->size(); ++v) EXPECT_EQ((*events)[v].position, static_cast<es::Position>(v + 1));
}

// The live readers of one process read the log through one follower (its tail): readers
// with different filters on one store, appends from it and from a second store (another
// process) interleaved, and the first store's connections cut while they run. Every reader
// sees each event it asked for once, in position order.
TEST_F(PostgresEventStoreTest, LiveReadersSeeEveryProcessesAppendsInOrderThroughLostConnections) {
  TestSchema schema;
  const std::string app = "of_" + schema.name();
  auto a = open_store(schema.name(), nullptr, std::string(test_server()) + "?application_name=" + app);
  auto b = open_store(schema.name());

  struct Reader {
    es::EventFilter filter;
    std::mutex mu;
    std::vector<es::Position> seen;
    std::unique_ptr<es::Subscription> sub;
  };
  std::array<Reader, 3> readers;
  readers[1].filter.categories = {"red"};
  readers[2].filter.categories = {"blue"};
  for (auto& r : readers) {
    r.sub = std::make_unique<es::Subscription>(
        *a, nullptr, es::SubscriptionOptions{"follow", es::Position{1}, r.filter, 50, std::chrono::milliseconds(20)},
        [&r](std::span<const es::RecordedEvent> batch, es::Position) -> Result<void> {
          std::lock_guard lk(r.mu);
          for (const auto& e : batch) r.seen.push_back(e.position);
          return {};
        });
    ASSERT_TRUE(r.sub->start());
  }

  constexpr int kAppends = 300;
  std::atomic<int> written_by_a{0};
  auto write = [&](es::EventStore& store, const std::string& who, std::atomic<int>* count) {
    for (int i = 0; i < kAppends; ++i) {
      const auto stream = es::StreamId(std::string(i % 2 ? "red-" : "blue-") + who + std::to_string(i % 7));
      // A connection cut during a commit may fail an append: what counts is what is stored.
      (void)store.append(make_append(stream, ExpectedVersion::any(), 1 + i % 3));
      if (count) ++*count;
    }
  };
  std::thread writer_a([&] { write(*a, "a", &written_by_a); });
  std::thread writer_b([&] { write(*b, "b", nullptr); });
  eventually([&] { return written_by_a >= kAppends / 3; });
  auto admin = schema.connect();
  auto killed = admin.query({"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                             {app}});
  ASSERT_TRUE(killed);
  EXPECT_GE(killed->int64(0, 0), 1);
  writer_a.join();
  writer_b.join();

  auto all = b->read_all(es::Position{1}, 100000);
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_GT(all->size(), std::size_t{kAppends});
  for (auto& r : readers) {
    std::vector<es::Position> expected;
    for (const auto& e : *all)
      if (r.filter.matches(e)) expected.push_back(e.position);
    eventually([&] {
      std::lock_guard lk(r.mu);
      return r.seen.size() >= expected.size();
    });
    r.sub->stop();
    std::lock_guard lk(r.mu);
    EXPECT_EQ(r.seen, expected) << "a reader filtered by " << (r.filter.categories.empty() ? "nothing" : r.filter.categories[0]);
  }
}

// A write acknowledged is seen by every read of the log at once, while the log's follower
// (started by a live reader) may not have read it yet: only live readers read its tail.
TEST_F(PostgresEventStoreTest, AnAcknowledgedAppendIsReadAtOnceWhileTheFollowerTrailsIt) {
  TestSchema schema;
  auto store = open_store(schema.name());
  ASSERT_TRUE(store->append(make_append("ryw-1", ExpectedVersion::any())));
  EXPECT_TRUE(store->wait_for_events(es::Position{0}, std::chrono::seconds(5))) << "the follower reads position 1";
  for (int i = 0; i < 50; ++i) {
    auto r = store->append(make_append("ryw-1", ExpectedVersion::any()));
    ASSERT_TRUE(r) << r.error().message;
    auto read = store->read_all(r->position, 1);
    ASSERT_TRUE(read) << read.error().message;
    ASSERT_EQ(read->size(), 1u) << "append " << i << " at position " << r->position << " not read back";
    EXPECT_EQ(read->front().position, r->position);
  }
}

TEST_F(PostgresEventStoreTest, ManyProcessesMayMigrateAtOnce) {
  TestSchema schema;
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      if (open_store(schema.name())) ++opened;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(opened.load(), 4);
  auto c = schema.connect();
  auto applied = c.query({"SELECT count(*), max(version) FROM schema_migrations", {}});
  ASSERT_TRUE(applied);
  EXPECT_EQ(applied->int64(0, 0), 5);
  EXPECT_EQ(applied->int64(0, 1), 5);
}

// A batch the database cannot write (its disk full: SQLSTATE 53100, raised here by a trigger)
// answers its appends unavailable and is told of: write_failure() names it (/readyz answers 503)
// for kWriteFailureShown after the last such batch, unless one commits meanwhile. Once the
// database writes again, the next append commits and nothing is told.
TEST(PostgresEventStore, ABatchTheDatabaseCannotWriteIsToldOfUntilOneCommits) {
  TestSchema schema;
  auto store = open_store(schema.name());
  ASSERT_TRUE(store->append(make_append("full-1", ExpectedVersion::no_stream(), 1)));
  EXPECT_FALSE(store->write_failure());
  auto c = schema.connect();
  ASSERT_TRUE(
      c.exec("CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; "
             "END $$; CREATE TRIGGER disk_full BEFORE INSERT ON events EXECUTE FUNCTION disk_full()"));
  auto refused = store->append(make_append("full-2", ExpectedVersion::no_stream(), 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::unavailable);
  auto failure = store->write_failure();
  ASSERT_TRUE(failure);
  EXPECT_NE(failure->message.find("No space left on device"), std::string::npos) << failure->message;

  std::this_thread::sleep_for(PostgresEventStore::kWriteFailureShown + std::chrono::milliseconds(100));
  EXPECT_FALSE(store->write_failure()) << "no write for a while: ready again, to be tried";
  ASSERT_FALSE(store->append(make_append("full-3", ExpectedVersion::no_stream(), 1)));
  EXPECT_TRUE(store->write_failure());

  ASSERT_TRUE(c.exec("DROP TRIGGER disk_full ON events"));
  ASSERT_TRUE(store->append(make_append("full-4", ExpectedVersion::no_stream(), 1)));
  EXPECT_FALSE(store->write_failure());
  auto read = store->read_stream("full-2", es::StreamVersion{0}, 10, es::Direction::forward);
  ASSERT_TRUE(read);
  EXPECT_TRUE(read->empty()) << "an append answered unavailable was written";
}

}  // namespace
}  // namespace orderflow::testing
