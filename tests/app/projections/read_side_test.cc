#include "app/projections/read_side.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "app/projections/read_model_backends.h"
#include "app/command_handler.h"
#include "app/verify.h"
#include "codec/domain_codec.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::app::projections {
namespace {

using namespace domain;
using namespace std::chrono_literals;
using testing::ReadModelBackend;

// Every case runs on each read-model database (the event store is SQLite throughout).
class ReadSideTest : public ::testing::TestWithParam<ReadModelBackend> {
 protected:
  void SetUp() override {
    if (auto why = place_.unavailable(); !why.empty()) GTEST_SKIP() << why;
    open_store();
  }

  bool shared() const { return GetParam() == ReadModelBackend::postgres; }

  void open_store() {
    sqlite::SqliteEventStoreOptions o;
    o.path = place_.dir().file("events.db");
    store_ = std::move(*sqlite::SqliteEventStore::open(o));
    handler_ = std::make_unique<CommandHandler>(*store_, store_.get());
  }
  void close_store() {
    handler_.reset();
    store_.reset();
  }
  // Another open of the read-model database, as another process would have.
  std::unique_ptr<ReadSide> open_read_side(std::size_t batch_size = 100, bool claim = true) {
    return ReadSide::open(place_.open(), *store_, {.batch_size = batch_size, .claim = claim});
  }

  template <class A>
  Result<Handled<A>> run(const std::string& id, typename A::Command cmd) {
    std::promise<Result<Handled<A>>> answer;
    handler_->handle<A>(id, std::move(cmd), {}, [&](Result<Handled<A>> r) { answer.set_value(std::move(r)); });
    return answer.get_future().get();
  }

  std::string place(const std::string& customer, const std::string& product, std::int64_t quantity) {
    static int n = 0;
    auto id = "00000000-0000-7000-8000-" + std::to_string(100000000000 + ++n);
    auto r = run<Order>(id, order::PlaceOrder{id, customer, {{product, quantity, 250}}, std::nullopt, 1000 + n});
    EXPECT_TRUE(r) << r.error().message;
    return id;
  }

  // Waits until every projection has applied the store's last position.
  void catch_up(ReadSide& read) {
    const auto last = *store_->last_position();
    for (int i = 0; i < 1000; ++i) {
      bool behind = false;
      for (const auto& s : read.runner().status()) {
        ASSERT_NE(s.state, es::ProjectionState::failed) << s.name << ": " << s.last_error.value_or("");
        behind = behind || s.position < last || s.state == es::ProjectionState::rebuilding;
      }
      if (!behind) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "projections did not catch up";
  }

  // The read models against a fold of the store. (Not the §5 invariants: this workload
  // drives aggregates directly, without the saga that keeps them.)
  void expect_matches_store(ReadSide& read) {
    VerifyContext ctx{*store_, *store_, read};
    for (const auto& check : verify_checks()) {
      if (std::string_view(check.name) == "invariants") continue;
      Differences found;
      ASSERT_TRUE(check.run(ctx, found)) << check.name;
      EXPECT_TRUE(found.empty()) << check.name << ": " << found.size() << " differences, first: " << found.front();
    }
  }

  // The sales read model counts every order placed.
  void expect_sales_count_every_order(ReadSide& read) {
    auto sales = *read.sales().sales(INT64_MIN, INT64_MAX);
    auto placed = *store_->read_all(es::Position{1}, 1000000, es::EventFilter{{"order"}, {"OrderPlaced"}, ""});
    EXPECT_EQ(sales.orders_placed, static_cast<std::int64_t>(placed.size()));
  }

  // Feeds `events` (each stream's in version order) to the four read models a bus-fed
  // projector writes, as it does: each readied for the bus, then batches of 64. Every event
  // must apply in its turn, none wait for an earlier version.
  void deliver(ReadSide& read, std::span<const es::RecordedEvent> events) {
    for (TableProjection* p :
         std::initializer_list<TableProjection*>{&read.orders(), &read.products(), &read.accounts(), &read.sales()}) {
      ASSERT_TRUE(*p->claim());
      auto live = std::move(*p->open_live());
      ASSERT_TRUE(p->prepare_for_bus(*live, store_.get()));
      for (std::size_t from = 0; from < events.size(); from += 64) {
        auto early = p->apply_delivered(*live, events.subspan(from, std::min<std::size_t>(64, events.size() - from)));
        ASSERT_TRUE(early) << early.error().message;
        ASSERT_TRUE(early->empty()) << p->name() << ": " << events[from + early->front()].stream_id.str()
                                    << " waits for a version it was not brought";
      }
    }
  }

  // A random mix of every command that touches the read models.
  void random_workload(std::mt19937_64& rng, int commands) {
    for (int i = 0; i < commands; ++i) {
      const auto p = "p" + std::to_string(rng() % 5);
      const auto c = "c" + std::to_string(rng() % 5);
      switch (rng() % 7) {
        case 0: (void)run<Product>(p, product::RegisterProduct{p, "P " + p, 250, 100}); break;
        case 1: (void)run<Product>(p, product::AddStock{static_cast<std::int64_t>(1 + rng() % 9)}); break;
        case 2: (void)run<Account>(c, account::OpenAccount{c, "Owner " + c}); break;
        case 3: (void)run<Account>(c, account::Deposit{static_cast<std::int64_t>(1 + rng() % 1000)}); break;
        case 4: (void)run<Account>(c, account::Withdraw{static_cast<std::int64_t>(1 + rng() % 100)}); break;
        case 5: {
          auto id = place(c, p, 1 + static_cast<std::int64_t>(rng() % 3));
          (void)run<Product>(p, product::ReserveStock{id, 1});
          (void)run<Account>(c, account::Charge{id, 250});
          if (rng() % 2) (void)run<Order>(id, order::ConfirmOrder{2000});
          break;
        }
        case 6: {
          auto id = place(c, p, 1);
          (void)run<Order>(id, order::CancelOrder{"changed my mind", order::PaymentStatus::pending, 3000});
          break;
        }
      }
    }
  }

  testing::ReadModelPlace place_{GetParam()};
  std::unique_ptr<sqlite::SqliteEventStore> store_;
  std::unique_ptr<CommandHandler> handler_;
};

TEST_P(ReadSideTest, RandomWorkloadEqualsAFoldOfTheStore) {
  std::mt19937_64 rng(7);
  random_workload(rng, 300);  // partly before the projections start: catch-up
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  random_workload(rng, 300);  // partly live
  catch_up(*read);
  expect_matches_store(*read);

  expect_sales_count_every_order(*read);
}

// The bus feeds streams apart: a read model it fed has applied some streams further than
// others, and its stored position is only the highest it applied. Tailed from the log
// afterwards (a process without --bus, or `orderflow verify`), it is caught up stream by
// stream from the log's start, not from that position: the events the bus had not brought
// below it are applied, none twice, and then the log feeds it as any other.
TEST_P(ReadSideTest, AReadModelTheBusFedIsCaughtUpFromTheLogStreamByStream) {
  std::mt19937_64 rng(11);
  random_workload(rng, 400);
  const auto events = *store_->read_all(es::Position{1}, 1000000);
  // Each stream's events up to a random version, the last stream's all (the highest
  // position), as a bus-fed projector may have left them.
  std::map<std::string, std::int64_t> brought;
  for (const auto& e : events) brought[e.stream_id.str()] = e.version.value();
  for (auto& [stream, last] : brought)
    if (stream != events.back().stream_id.str()) last = static_cast<std::int64_t>(rng() % (last + 2)) - 1;
  std::vector<es::RecordedEvent> delivered;
  for (const auto& e : events)
    if (e.version.value() <= brought[e.stream_id.str()]) delivered.push_back(e);
  ASSERT_LT(delivered.size(), events.size());
  {
    auto read = open_read_side();
    deliver(*read, delivered);
  }
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  catch_up(*read);
  expect_matches_store(*read);
  expect_sales_count_every_order(*read);
  std::int64_t rows = -1;
  ASSERT_TRUE(read->db().query("SELECT count(*) FROM bus_versions", {}, [&](const es::Row& r) { rows = r.int64(0); }));
  EXPECT_EQ(rows, 0) << "caught up, the read models are the log's: their bus versions are gone";

  // Restarted, the log goes on from their positions.
  read.reset();
  random_workload(rng, 100);
  read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  catch_up(*read);
  expect_matches_store(*read);
}

// The other way: read models the log fed, then fed from the bus by a consumer that starts
// a little before where the log left them (the relay and the consumer set up then).
// Readied for the bus, they know each stream's version at their position: what the bus
// brings again is skipped, the rest applies past it, and no stream waits for versions the
// log applied (it would wait for ever: the bus never brings them).
TEST_P(ReadSideTest, AReadModelTheLogFedGoesOnFromTheBusWithoutWaitingForVersionsItHas) {
  std::mt19937_64 rng(13);
  random_workload(rng, 300);
  {
    auto read = open_read_side();
    ASSERT_TRUE(read->runner().start());
    catch_up(*read);
  }
  const auto folded = *store_->last_position();
  random_workload(rng, 200);
  const auto events = *store_->read_all(es::Position{std::max<std::int64_t>(1, folded.value() - 40)}, 1000000);
  {
    auto read = open_read_side();
    deliver(*read, events);
    expect_matches_store(*read);
    expect_sales_count_every_order(*read);
  }
}

// A read model a bus-fed projector opened that has applied nothing of its own yet (its
// categories' messages not brought: on Kafka, partitions not assigned yet), its position
// raised past them meanwhile (the projector, quiet, raises it to what it acknowledged): it
// is still one the bus fed, not one the log fed through that position. Readied for the bus
// again (a restart), it takes none of its streams for applied; tailed from the log, it is
// caught up from the log's start.
TEST_P(ReadSideTest, AReadModelTheBusFedThatAppliedNothingYetIsNotTakenForOneTheLogFed) {
  std::mt19937_64 rng(17);
  random_workload(rng, 200);
  const auto last = *store_->last_position();
  const auto events = *store_->read_all(es::Position{1}, 1000000);
  {
    auto read = open_read_side();
    for (TableProjection* p : std::initializer_list<TableProjection*>{&read->products(), &read->accounts()}) {
      ASSERT_TRUE(*p->claim());
      auto live = std::move(*p->open_live());
      ASSERT_TRUE(p->prepare_for_bus(*live, store_.get()));
      ASSERT_TRUE(p->raise_delivered_position(*live, last));
    }
  }
  auto read = open_read_side();
  {
    ASSERT_TRUE(*read->products().claim());
    auto live = std::move(*read->products().open_live());
    ASSERT_TRUE(read->products().prepare_for_bus(*live, store_.get()));
    ASSERT_TRUE(read->products().apply_delivered(*live, events));
    VerifyContext ctx{*store_, *store_, *read};
    Differences found;
    ASSERT_TRUE(check_products(ctx, found));
    EXPECT_TRUE(found.empty()) << found.size() << " differences, first: " << found.front();
  }
  ASSERT_TRUE(read->runner().start());  // accounts (and the fresh orders and sales) from the log
  catch_up(*read);
  expect_matches_store(*read);
}

// An entity read model never folds across a missing version of its stream: the batch is
// refused as corrupt (it rendered a state no fold of the store has).
TEST_P(ReadSideTest, AnEntityReadModelRefusesAVersionGapInItsStream) {
  const auto id = place("c1", "p1", 1);
  ASSERT_TRUE(run<Order>(id, order::CancelOrder{"changed my mind", order::PaymentStatus::pending, 3000}));
  auto events = *store_->read_all(es::Position{1}, 1000, es::EventFilter{{"order"}, {}, ""});
  ASSERT_EQ(events.size(), 2u);
  events[1].version = es::StreamVersion{2};
  auto read = open_read_side();
  ASSERT_TRUE(*read->orders().claim());
  auto live = std::move(*read->orders().open_live());
  auto applied = live->apply(events, events.back().position);
  ASSERT_FALSE(applied);
  EXPECT_EQ(applied.error().code, Errc::corrupt) << applied.error().message;
  EXPECT_EQ(*live->position(), es::Position{0}) << "nothing of the batch committed";
}

// verify compares every snapshot with the fold of its events: one that holds a reservation
// never appended (what a repeated saga step used to leave) is a difference, and one past
// the stream's end too.
TEST_P(ReadSideTest, VerifyFindsASnapshotThatIsNotTheFoldOfItsEvents) {
  std::mt19937_64 rng(11);
  random_workload(rng, 200);
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  catch_up(*read);
  VerifyContext ctx{*store_, *store_, *read};
  Differences found;
  ASSERT_TRUE(check_snapshots(ctx, found));
  EXPECT_TRUE(found.empty()) << found.front();

  ASSERT_TRUE(run<Product>("mug", product::RegisterProduct{"mug", "Mug", 100, 10}));
  ASSERT_TRUE(run<Product>("mug", product::ReserveStock{"o1", 3}));
  auto folded = handler_->load_until<Product>("mug", es::StreamVersion{1});
  auto wrong = folded->state;
  wrong.reserved += 3;
  ASSERT_TRUE(store_->save_snapshot({"product-mug", es::StreamVersion{1}, codec::kStateSchemaVersion, codec::encode_state(wrong)}));
  ASSERT_TRUE(store_->save_snapshot({"account-ghost", es::StreamVersion{4}, codec::kStateSchemaVersion, "{}"}));
  found.clear();
  ASSERT_TRUE(check_snapshots(ctx, found));
  ASSERT_EQ(found.size(), 2u);
  EXPECT_NE(found[0].find("snapshot account-ghost at version 4: the stream ends at version -1"), std::string::npos)
      << found[0];
  EXPECT_NE(found[1].find("snapshot product-mug at version 1: holds"), std::string::npos) << found[1];
}

TEST_P(ReadSideTest, RebuildWhileWritesContinueEndsIdentical) {
  std::mt19937_64 rng(11);
  random_workload(rng, 400);
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  catch_up(*read);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::mt19937_64 wrng(12);
    while (!stop) random_workload(wrng, 5);
  });
  for (const char* name : {"orders", "products", "accounts", "sales"}) ASSERT_TRUE(read->runner().rebuild(name));
  ASSERT_FALSE(read->runner().rebuild("nope"));
  std::this_thread::sleep_for(300ms);
  stop = true;
  writer.join();
  catch_up(*read);
  expect_matches_store(*read);
  // The promoted copies got the indexes they were filled without (the old copies' are gone).
  EXPECT_EQ(place_.index_kinds(),
            (std::multiset<std::string>{"orders_by_customer", "orders_by_position", "orders_by_status",
                                        "sales_orders_by_time", "transactions_by_account"}));
}

TEST_P(ReadSideTest, PagingReturnsEveryOrderExactlyOnceWhileOrdersArrive) {
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  std::set<std::string> before;
  for (int i = 0; i < 120; ++i) before.insert(place("pager", "p1", 1));
  catch_up(*read);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop) place("pager", "p1", 1);
  });
  std::multiset<std::string> seen;
  OrderListQuery q;
  q.customer_id = "pager";
  q.limit = 7;
  for (;;) {
    auto page = read->orders().list(q);
    ASSERT_TRUE(page) << page.error().message;
    for (const auto& doc : page->documents) seen.insert(doc.substr(doc.find("\"order_id\":\"") + 12, 36));
    if (!page->next_cursor) break;
    q.cursor = page->next_cursor;
    std::this_thread::sleep_for(2ms);
  }
  stop = true;
  writer.join();
  for (const auto& id : before) EXPECT_EQ(seen.count(id), 1u) << id;
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size()) << "an order came twice";
  q.cursor = "not-a-cursor";
  EXPECT_EQ(read->orders().list(q).error().code, Errc::invalid_argument);
}

TEST_P(ReadSideTest, WhenAppliedWaitsForThePositionOrTimesOut) {
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  std::promise<bool> reached, late;
  const auto target = *store_->last_position() + 1;
  read->runner().when_applied("accounts", target, std::chrono::steady_clock::now() + 5s,
                              [&](bool ok) { reached.set_value(ok); });
  read->runner().when_applied("accounts", target + 100, std::chrono::steady_clock::now() + 100ms,
                              [&](bool ok) { late.set_value(ok); });
  ASSERT_TRUE(run<Account>("waiter", account::OpenAccount{"waiter", ""}));
  EXPECT_TRUE(reached.get_future().get());
  EXPECT_FALSE(late.get_future().get());
}

TEST_P(ReadSideTest, AFailingEventStopsTheProjectionVisiblyUntilRebuilt) {
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  ASSERT_TRUE(run<Account>("bad", account::OpenAccount{"bad", ""}));
  es::NewEvent e{"00000000-0000-7000-8000-000000000001", "FundsDeposited", 1, R"({"amount_cents":"lots"})", "{}"};
  ASSERT_TRUE(store_->append({"account-bad", es::ExpectedVersion::any(), {e}}));
  for (int i = 0; i < 500; ++i) {
    auto s = read->runner().status()[2];
    if (s.state == es::ProjectionState::failed) {
      EXPECT_EQ(s.name, "accounts");
      EXPECT_NE(s.last_error->find("FundsDeposited"), std::string::npos) << *s.last_error;
      EXPECT_LT(s.position, *store_->last_position());
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  FAIL() << "the projection did not fail";
}

TEST_P(ReadSideTest, LagIsMeasuredForEventsAppliedLiveOnly) {
  auto read = open_read_side();
  for (int i = 0; i < 20; ++i) place("lagger", "p1", 1);  // applied by the live copy catching up
  ASSERT_TRUE(read->runner().start());
  catch_up(*read);
  const auto before = read->runner().lags();
  ASSERT_TRUE(run<Account>("lag", account::OpenAccount{"lag", ""}));
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(run<Account>("lag", account::Deposit{1}));
  catch_up(*read);
  ASSERT_TRUE(read->runner().rebuild("accounts"));  // a rebuilt copy's events are not lag
  catch_up(*read);
  const auto after = read->runner().lags();
  ASSERT_EQ(after.size(), 4u);
  for (const auto& lag : after) {
    EXPECT_LE(lag.p50_ms, lag.p99_ms) << lag.name;
    EXPECT_GE(lag.p50_ms, 0) << lag.name;
    EXPECT_LT(lag.p99_ms, 10000) << lag.name;
    std::uint64_t bucketed = 0;
    for (auto n : lag.buckets) bucketed += n;
    EXPECT_LE(bucketed, lag.count) << lag.name;
    EXPECT_EQ(lag.window, std::min<std::uint64_t>(lag.count, es::ProjectionRunner::kLagWindow)) << lag.name;
  }
  EXPECT_EQ(after[2].name, "accounts");
  EXPECT_EQ(after[2].count - before[2].count, 31u);
  EXPECT_GT(after[2].p99_ms, 0);
  EXPECT_EQ(after[0].name, "orders");
  EXPECT_EQ(after[0].count, before[0].count) << "no order event arrived live";
}

// (On a shared database the range is written: other processes know only stored positions.)
TEST_P(ReadSideTest, ARangeWithoutItsEventsAdvancesAProjectionWithoutAWrite) {
  ASSERT_TRUE(run<Account>("quiet", account::OpenAccount{"quiet", ""}));
  {
    auto read = open_read_side();
    ASSERT_TRUE(read->runner().start());
    catch_up(*read);
    const auto stored = *(*read->accounts().open_live())->position();
    EXPECT_EQ(stored, *store_->last_position());
    for (int i = 0; i < 5; ++i) place("quiet", "p1", 1);
    catch_up(*read);
    EXPECT_EQ(read->runner().position("accounts"), *store_->last_position());
    EXPECT_EQ(*(*read->accounts().open_live())->position(), shared() ? *store_->last_position() : stored);
  }
  // Restarted, it scans the range again, finds nothing of its own and loses nothing.
  ASSERT_TRUE(run<Account>("quiet", account::Deposit{7}));
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  catch_up(*read);
  EXPECT_EQ(read->accounts().transactions("quiet", 100, es::Position{0})->size(), 1u);
  expect_matches_store(*read);
}

// kill -9 at random moments while projecting: every deposit is counted exactly once.
TEST_P(ReadSideTest, KillDuringProjectionNeverDoubleCounts) {
  constexpr int kDeposits = 3000;
  ASSERT_TRUE(run<Account>("crash", account::OpenAccount{"crash", ""}));
  for (int i = 0; i < kDeposits; ++i) ASSERT_TRUE(run<Account>("crash", account::Deposit{1}));
  close_store();
  std::mt19937_64 rng(5);
  for (int round = 0; round < 5; ++round) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      open_store();
      auto read = open_read_side(50);
      if (!read->runner().start()) ::_exit(3);
      if (round % 2) (void)read->runner().rebuild("accounts");
      std::this_thread::sleep_for(10s);
      ::_exit(0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 80));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
  }
  open_store();
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  catch_up(*read);
  auto doc = *read->accounts().get("crash");
  ASSERT_TRUE(doc);
  EXPECT_NE(doc->json.find("\"balance_cents\":" + std::to_string(kDeposits) + ","), std::string::npos) << doc->json;
  auto ledger = *read->accounts().transactions("crash", 100000, es::Position{0});
  EXPECT_EQ(ledger.size(), static_cast<std::size_t>(kDeposits));
  expect_matches_store(*read);
}

// Two processes on one shared database: one folds, the other serves what it wrote (and
// waits for positions) and takes over once the first has gone.
TEST_P(ReadSideTest, OneOfTwoProcessesFoldsTheOtherServesAndTakesOver) {
  if (!shared()) GTEST_SKIP() << "a SQLite read-model database is one process's own";
  std::mt19937_64 rng(3);
  random_workload(rng, 100);
  auto first = open_read_side();
  ASSERT_TRUE(first->runner().start());
  auto second = open_read_side();
  ASSERT_TRUE(second->runner().start());
  auto never_claims = open_read_side(100, false);
  ASSERT_TRUE(never_claims->runner().start());
  random_workload(rng, 100);
  catch_up(*first);
  catch_up(*second);
  for (const auto& s : first->runner().status()) EXPECT_EQ(s.state, es::ProjectionState::running) << s.name;
  for (const auto& s : second->runner().status()) EXPECT_EQ(s.state, es::ProjectionState::following) << s.name;
  expect_matches_store(*second);
  EXPECT_EQ(second->runner().rebuild("orders").error().code, Errc::invalid_state);

  // Read-your-writes in the follower: it sees the writer's stored position pass the target.
  std::promise<bool> reached;
  const auto target = *store_->last_position() + 1;
  second->runner().when_applied("accounts", target, std::chrono::steady_clock::now() + 5s,
                                [&](bool ok) { reached.set_value(ok); });
  ASSERT_TRUE(run<Account>("follower", account::OpenAccount{"follower", ""}));
  EXPECT_TRUE(reached.get_future().get());
  EXPECT_TRUE(*second->accounts().get("follower"));

  first.reset();  // its connections close, and its claims go with them
  random_workload(rng, 100);
  for (int i = 0; i < 500; ++i) {
    auto status = second->runner().status();
    if (std::all_of(status.begin(), status.end(),
                    [](const auto& s) { return s.state == es::ProjectionState::running; }))
      break;
    std::this_thread::sleep_for(10ms);
  }
  for (const auto& s : second->runner().status()) EXPECT_EQ(s.state, es::ProjectionState::running) << s.name;
  catch_up(*second);
  catch_up(*never_claims);
  for (const auto& s : never_claims->runner().status()) EXPECT_EQ(s.state, es::ProjectionState::following) << s.name;
  expect_matches_store(*second);
  ASSERT_TRUE(second->runner().rebuild("accounts"));
  catch_up(*second);
  expect_matches_store(*second);
}

// A writer whose connection (and the claim with it) is lost follows until it claims the
// projection again, and then goes on where the stored position says.
TEST_P(ReadSideTest, AWriterThatLosesItsConnectionClaimsAgainAndGoesOn) {
  if (!shared()) GTEST_SKIP() << "a SQLite read-model database has no connection to lose";
  auto read = open_read_side();
  ASSERT_TRUE(read->runner().start());
  ASSERT_TRUE(run<Account>("lost", account::OpenAccount{"lost", ""}));
  catch_up(*read);
  auto admin = place_.connect();
  auto killed = admin.query({"SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND "
                             "objid::bigint = (hashtext('orderflow.readmodel.' || $1)::bigint & 4294967295)",
                             {place_.schema() + ".accounts"}});
  ASSERT_TRUE(killed) << killed.error().message;
  ASSERT_EQ(killed->int64(0, 0), 1);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(run<Account>("lost", account::Deposit{1}));
  catch_up(*read);
  for (const auto& s : read->runner().status()) EXPECT_EQ(s.state, es::ProjectionState::running) << s.name;
  EXPECT_EQ(read->accounts().transactions("lost", 100, es::Position{0})->size(), 20u);
  expect_matches_store(*read);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReadSideTest,
                         ::testing::Values(ReadModelBackend::sqlite, ReadModelBackend::postgres),
                         testing::backend_name);

}  // namespace
}  // namespace orderflow::app::projections
