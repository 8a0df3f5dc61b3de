#include "app/command_handler.h"

#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <thread>

#include "codec/domain_codec.h"
#include "core/uuid.h"
#include "forwarding_event_store.h"
#include "store/sqlite/sqlite_event_store.h"
#include "support/temp_dir.h"

namespace orderflow::app {
namespace {

using namespace domain;
using testing::TempDir;

class CommandHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  void open(CommandHandlerOptions options = {}) {
    handler_.reset();
    store_.reset();
    sqlite::SqliteEventStoreOptions o;
    o.path = dir_.file("events.db");
    store_ = std::move(*sqlite::SqliteEventStore::open(o));
    handler_ = std::make_unique<CommandHandler>(*store_, store_.get(), options);
  }

  template <class A>
  Result<Handled<A>> run(const std::string& id, typename A::Command cmd, CommandMeta meta = {}) {
    std::promise<Result<Handled<A>>> answer;
    handler_->handle<A>(id, std::move(cmd), std::move(meta),
                        [&](Result<Handled<A>> r) { answer.set_value(std::move(r)); });
    return answer.get_future().get();
  }

  TempDir dir_;
  std::unique_ptr<sqlite::SqliteEventStore> store_;
  std::unique_ptr<CommandHandler> handler_;
};

TEST_F(CommandHandlerTest, AppendsDecidedEventsWithMetadata) {
  CommandMeta meta;
  meta.correlation_id = "corr-1";
  meta.actor = "tester";
  auto r = run<Account>("ann", account::OpenAccount{"ann", "Ann"}, meta);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->result.version, 0);
  EXPECT_EQ(r->state->account_id, "ann");
  auto events = *store_->read_stream("account-ann", es::StreamVersion{0}, 10, es::Direction::forward);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "AccountOpened");
  EXPECT_NE(events[0].metadata.find(R"("correlation_id":"corr-1")"), std::string::npos);
  EXPECT_NE(events[0].metadata.find(R"("actor":"tester")"), std::string::npos);
  EXPECT_NE(events[0].metadata.find(R"("command_id":)"), std::string::npos);
}

TEST_F(CommandHandlerTest, RejectionsWriteNothing) {
  ASSERT_TRUE(run<Account>("ann", account::OpenAccount{"ann", ""}));
  auto r = run<Account>("ann", account::Withdraw{5});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::insufficient_funds);
  EXPECT_EQ(*store_->last_position(), 1);
}

TEST_F(CommandHandlerTest, IfMatchIsHonouredExactly) {
  ASSERT_TRUE(run<Account>("ann", account::OpenAccount{"ann", ""}));
  CommandMeta stale;
  stale.if_match = es::StreamVersion{3};
  auto r = run<Account>("ann", account::Deposit{5}, stale);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::version_conflict);
  EXPECT_EQ(r.error().current_version, 0);
  CommandMeta right;
  right.if_match = es::StreamVersion{0};
  EXPECT_TRUE(run<Account>("ann", account::Deposit{5}, right));
}

TEST_F(CommandHandlerTest, ConcurrentCommandsOnOneStreamLoseNoUpdate) {
  ASSERT_TRUE(run<Account>("hot", account::OpenAccount{"hot", ""}));
  constexpr int kThreads = 8, kEach = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        if (run<Account>("hot", account::Deposit{1})) ++ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);  // retries chain behind pending appends
  auto loaded = handler_->load<Account>("hot");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->state.balance_cents, ok.load());
  EXPECT_EQ(loaded->version, kThreads * kEach);
}

TEST_F(CommandHandlerTest, AStaleCacheCostsOnlyARetry) {
  ASSERT_TRUE(run<Account>("ann", account::OpenAccount{"ann", ""}));
  // Someone else appends behind the handler's back (another process, later).
  es::AppendRequest direct{"account-ann", es::ExpectedVersion::exact(es::StreamVersion{0}), {}, {}};
  direct.events.push_back({"11111111-1111-4111-8111-111111111111", "FundsDeposited", 1,
                           codec::encode_event(account::Event(account::FundsDeposited{70})), "{}"});
  ASSERT_TRUE(store_->append(direct));
  auto r = run<Account>("ann", account::Withdraw{50});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->state->balance_cents, 20);
  EXPECT_EQ(r->result.version, 2);
}

TEST_F(CommandHandlerTest, NewStreamFastPathFallsBackWhenTheStreamExists) {
  ASSERT_TRUE(run<Account>("ann", account::OpenAccount{"ann", ""}));
  CommandMeta meta;
  meta.new_stream = true;  // wrong: it exists
  auto r = run<Account>("ann", account::OpenAccount{"ann", ""}, meta);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::already_exists);  // decided on the real state after the conflict
}

TEST_F(CommandHandlerTest, DerivedEventIdsMakeARepeatedCommandAppendNothing) {
  ASSERT_TRUE(run<Product>("mug", product::RegisterProduct{"mug", "Mug", 100, 10}));
  CommandMeta meta;
  meta.event_id = [](std::size_t i) { return "22222222-2222-4222-8222-00000000000" + std::to_string(i); };
  auto first = run<Product>("mug", product::ReserveStock{"o1", 2}, meta);
  ASSERT_TRUE(first);
  auto again = run<Product>("mug", product::ReserveStock{"o1", 2}, meta);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->result.position, first->result.position);
  auto loaded = handler_->load<Product>("mug");
  EXPECT_EQ(loaded->state.reserved, 2);
}

// A saga step issued again after a replay or a takeover: the store answers it as a retry of
// the stored append (its original version), and what was decided this time (a second
// reservation on the newer state) must reach neither the cache nor a snapshot.
TEST_F(CommandHandlerTest, ARepeatedCommandLeavesNoSnapshotOrCacheOfWhatItDecidedAgain) {
  CommandHandlerOptions options;
  options.snapshot_every = 1;
  open(options);
  ASSERT_TRUE(run<Product>("mug", product::RegisterProduct{"mug", "Mug", 100, 10}));
  CommandMeta meta;
  meta.event_id = [](std::size_t) { return std::string("33333333-3333-4333-8333-000000000001"); };
  auto first = run<Product>("mug", product::ReserveStock{"o1", 3}, meta);
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->result.written);
  ASSERT_TRUE(run<Product>("mug", product::AddStock{5}));  // the stream moves on
  auto again = run<Product>("mug", product::ReserveStock{"o1", 3}, meta);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(again->result.written);
  EXPECT_EQ(again->result.version, first->result.version);
  EXPECT_EQ(again->state, nullptr);
  EXPECT_EQ(handler_->load_latest<Product>("mug")->state.reserved, 3);  // the cache
  open(options);  // drains the snapshot writer, empties the cache
  auto loaded = handler_->load<Product>("mug");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->state.reserved, 3);
  EXPECT_EQ(loaded->state.on_hand, 15);
  // Every snapshot is the fold of its events.
  ASSERT_TRUE(store_->for_each_snapshot([&](const es::Snapshot& s) {
    auto folded = handler_->load_until<Product>("mug", s.version);
    ASSERT_TRUE(folded);
    EXPECT_EQ(s.state, codec::encode_state(folded->state)) << "snapshot at version " << s.version;
  }));
}

TEST_F(CommandHandlerTest, SnapshotsAreUsedAndUnreadableOnesIgnored) {
  CommandHandlerOptions options;
  options.snapshot_every = 10;
  open(options);
  ASSERT_TRUE(run<Account>("ann", account::OpenAccount{"ann", ""}));
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(run<Account>("ann", account::Deposit{1}));
  open(options);  // drains the snapshot writer, empties the cache
  auto snap = store_->load_snapshot("account-ann");
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->version, 20);
  auto loaded = handler_->load<Account>("ann");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->state.balance_cents, 25);
  EXPECT_EQ(loaded->version, 25);

  ASSERT_TRUE(store_->save_snapshot({"account-ann", es::StreamVersion{20}, codec::kStateSchemaVersion, "{not json"}));
  open(options);
  loaded = handler_->load<Account>("ann");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->state.balance_cents, 25);
  ASSERT_TRUE(store_->save_snapshot({"account-ann", es::StreamVersion{20}, codec::kStateSchemaVersion + 1, "{}"}));
  open(options);
  EXPECT_EQ(handler_->load<Account>("ann")->state.balance_cents, 25);
}

TEST_F(CommandHandlerTest, LoadUntilFoldsAnEarlierVersion) {
  ASSERT_TRUE(run<Account>("ann", account::OpenAccount{"ann", ""}));
  ASSERT_TRUE(run<Account>("ann", account::Deposit{10}));
  ASSERT_TRUE(run<Account>("ann", account::Deposit{20}));
  auto then = handler_->load_until<Account>("ann", es::StreamVersion{1});
  ASSERT_TRUE(then);
  EXPECT_EQ(then->version, 1);
  EXPECT_EQ(then->state.balance_cents, 10);
}


// A store between the handler and SQLite that stages appends as the pipeline does (on_staged
// at once, the version they will have) and writes or fails them only when told.
class StagingStore final : public testing::ForwardingEventStore {
 public:
  using ForwardingEventStore::ForwardingEventStore;

  void append_async(es::AppendRequest req, es::AppendCallback done) override {
    auto version = inner_.stream_version(req.stream_id);
    auto last = inner_.last_position();
    const auto n = static_cast<std::int64_t>(req.events.size());
    std::lock_guard lk(mu_);
    if (req.on_staged) req.on_staged({*version + n, *last + n});
    held_.push_back({std::move(req), std::move(done)});
    changed_.notify_all();
  }
  std::size_t held() const {
    std::lock_guard lk(mu_);
    return held_.size();
  }
  // A command that waited for a pending append goes on on a retry thread: its append
  // arrives a little later.
  bool wait_held(std::size_t n) {
    std::unique_lock lk(mu_);
    return changed_.wait_for(lk, std::chrono::seconds(10), [&] { return held_.size() == n; });
  }
  void write_first() { take().run(inner_); }
  void fail_first() { take().done(fail(Errc::unavailable, "injected: the batch failed its sync")); }
  int reads() const { return reads_.load(); }

  Result<std::vector<es::RecordedEvent>> read_stream(const es::StreamId& id, es::StreamVersion from, std::size_t max,
                                                     es::Direction d) override {
    ++reads_;
    return inner_.read_stream(id, from, max, d);
  }

 private:
  struct Held {
    es::AppendRequest req;
    es::AppendCallback done;
    void run(es::EventStore& store) { store.append_async(std::move(req), std::move(done)); }
  };
  Held take() {
    std::lock_guard lk(mu_);
    Held h = std::move(held_.front());
    held_.erase(held_.begin());
    return h;
  }
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Held> held_;
  std::atomic<int> reads_{0};
};

// A rejection decided on an append that is not yet durable is not answered before it is:
// if that append fails, the command is decided again on what the store holds.
TEST_F(CommandHandlerTest, ARejectionWaitsForThePendingAppendItRestsOn) {
  ASSERT_TRUE(run<Account>("ann", account::OpenAccount{"ann", ""}));
  ASSERT_TRUE(run<Account>("ann", account::Deposit{10}));
  StagingStore staging(*store_);
  using Answer = std::shared_future<Result<Handled<Account>>>;
  auto withdraw = [](CommandHandler& handler) {
    auto answer = std::make_shared<std::promise<Result<Handled<Account>>>>();
    handler.handle<Account>("ann", account::Withdraw{10}, {},
                            [answer](Result<Handled<Account>> r) { answer->set_value(std::move(r)); });
    return Answer(answer->get_future());
  };
  auto answered = [](const Answer& a) { return a.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready; };

  {
    CommandHandler handler(staging, nullptr);
    auto first = withdraw(handler);  // read from the store, staged: the balance will be 0
    ASSERT_EQ(staging.held(), 1u);
    auto second = withdraw(handler);  // decided on the staged state: insufficient funds, unless it fails
    EXPECT_FALSE(answered(second)) << "a rejection was answered on a state not yet durable";
    staging.fail_first();
    ASSERT_TRUE(answered(first));
    EXPECT_FALSE(first.get());
    // Decided again on the store, where the balance is 10: the second withdrawal goes through.
    ASSERT_TRUE(staging.wait_held(1));
    EXPECT_FALSE(answered(second));
    staging.write_first();
    ASSERT_TRUE(second.get()) << second.get().error().message;
    EXPECT_EQ(second.get()->state->balance_cents, 0);
  }
  {
    // Refused on the durable state too, it is answered at once (as if it came before the pending append).
    ASSERT_TRUE(run<Account>("ann", account::Deposit{10}));
    CommandHandler handler(staging, nullptr);
    auto first = withdraw(handler);
    ASSERT_EQ(staging.held(), 1u);
    auto answer = std::make_shared<std::promise<Result<Handled<Account>>>>();
    handler.handle<Account>("ann", account::Withdraw{50}, {},
                            [answer](Result<Handled<Account>> r) { answer->set_value(std::move(r)); });
    Answer big(answer->get_future());
    ASSERT_TRUE(answered(big)) << "a refusal of the durable state waited for a pending append";
    ASSERT_FALSE(big.get());
    EXPECT_EQ(big.get().error().code, Errc::insufficient_funds);
    staging.write_first();
    ASSERT_TRUE(first.get());
  }
  {
    // Once the append it rests on is durable, the rejection is answered.
    ASSERT_TRUE(run<Account>("ann", account::Deposit{10}));
    CommandHandler handler(staging, nullptr);
    auto third = withdraw(handler);
    auto fourth = withdraw(handler);
    EXPECT_FALSE(answered(fourth));
    staging.write_first();
    ASSERT_TRUE(third.get());
    ASSERT_FALSE(fourth.get());
    EXPECT_EQ(fourth.get().error().code, Errc::insufficient_funds);
    EXPECT_EQ(staging.held(), 0u);
  }
}

// A failed append forgets what it staged for its own stream; the other streams' states stay.
TEST_F(CommandHandlerTest, AFailedAppendForgetsOnlyWhatItStaged) {
  ASSERT_TRUE(run<Account>("ann", account::OpenAccount{"ann", ""}));
  ASSERT_TRUE(run<Account>("bob", account::OpenAccount{"bob", ""}));
  StagingStore staging(*store_);
  CommandHandler handler(staging, nullptr);
  auto send = [&](const std::string& id, account::Command command) {
    auto answer = std::make_shared<std::promise<Result<Handled<Account>>>>();
    handler.handle<Account>(id, std::move(command), {},
                            [answer](Result<Handled<Account>> r) { answer->set_value(std::move(r)); });
    return answer->get_future();
  };
  auto bob = send("bob", account::Deposit{5});  // read from the store, then cached
  staging.write_first();
  ASSERT_TRUE(bob.get());
  auto ann = send("ann", account::Deposit{7});
  staging.fail_first();
  ASSERT_FALSE(ann.get());

  const int reads = staging.reads();
  auto again = send("bob", account::Deposit{1});  // decided on the cached state: no read
  EXPECT_EQ(staging.reads(), reads) << "bob's cached state was forgotten when ann's append failed";
  staging.write_first();
  ASSERT_TRUE(again.get());
  auto retried = send("ann", account::Deposit{7});  // ann's staged state is gone: read again
  EXPECT_GT(staging.reads(), reads);
  staging.write_first();
  auto done = retried.get();
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done->state->balance_cents, 7);
  EXPECT_EQ(done->result.version, 1);
}

TEST(ConflictRetryPolicyTest, APinnedVersionIsNeverRetried) {
  ConflictRetryPolicy policy(10, std::chrono::milliseconds(30000), true);
  EXPECT_FALSE(policy.retry_conflict(es::StreamVersion{3}));
  EXPECT_EQ(policy.conflict_at(), 3);
}

TEST(ConflictRetryPolicyTest, RetriesUpToTheLimitThenOnlyWhileTheStreamMoves) {
  using Clock = ConflictRetryPolicy::Clock;
  const auto t0 = Clock::now();
  ConflictRetryPolicy stuck(3, std::chrono::milliseconds(1000), false, t0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(stuck.retry_conflict(es::StreamVersion{5}, t0)) << i;
  EXPECT_FALSE(stuck.retry_conflict(es::StreamVersion{5}, t0)) << "spinning at one version past the limit";
  EXPECT_EQ(stuck.retries(), 4);

  ConflictRetryPolicy moving(3, std::chrono::milliseconds(1000), false, t0);
  for (es::StreamVersion v{0}; v < 50; ++v)
    EXPECT_TRUE(moving.retry_conflict(v, t0 + std::chrono::milliseconds(10 * v.value()))) << v;
  EXPECT_FALSE(moving.retry_conflict(es::StreamVersion{50}, t0 + std::chrono::milliseconds(1000))) << "older than the window";

  // Past the limit, moving again resets the count of conflicts at one version.
  ConflictRetryPolicy waits(2, std::chrono::milliseconds(1000), false, t0);
  EXPECT_TRUE(waits.retry_conflict(es::StreamVersion{1}, t0));
  EXPECT_TRUE(waits.retry_conflict(es::StreamVersion{1}, t0));   // the limit
  EXPECT_TRUE(waits.retry_conflict(es::StreamVersion{2}, t0));   // past it, but the stream moved
  EXPECT_TRUE(waits.retry_conflict(es::StreamVersion{2}, t0));   // a second conflict at version 2
  EXPECT_FALSE(waits.retry_conflict(es::StreamVersion{2}, t0));  // a third: stuck
}

TEST(ConflictRetryPolicyTest, ACachedStateIsRecheckedWithinTheSameBudget) {
  ConflictRetryPolicy policy(2, std::chrono::milliseconds(0), false);
  EXPECT_TRUE(policy.recheck_cached());
  EXPECT_TRUE(policy.recheck_cached());
  EXPECT_FALSE(policy.recheck_cached());
  EXPECT_FALSE(policy.retry_conflict(es::StreamVersion{1})) << "the window is 0: past the limit nothing is retried";
  ConflictRetryPolicy pinned(2, std::chrono::milliseconds(0), true);
  EXPECT_TRUE(pinned.recheck_cached()) << "If-Match still reads past a stale cache";
}

// A store in front of SQLite that answers every append from a thread of its own (as the
// append pipeline answers from of-writer and of-sync) and forces conflicts: every third
// append, someone else deposits first, and the append is answered version_conflict.
// It records every read made on its answering thread: the handler must make none there.
class ThreadWatchingStore final : public testing::ForwardingEventStore {
 public:
  explicit ThreadWatchingStore(es::EventStore& inner)
      : ForwardingEventStore(inner), answerer_([this] { answer_loop(); }) {}
  ~ThreadWatchingStore() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    answerer_.join();
  }

  void append_async(es::AppendRequest req, es::AppendCallback done) override {
    if (++appends_ % 3 == 0) {
      es::AppendRequest other{req.stream_id, es::ExpectedVersion::any(), {}, {}};
      other.events.push_back({uuid_v7(), "FundsDeposited", 1,
                              codec::encode_event(account::Event(account::FundsDeposited{1})), "{}"});
      auto written = inner_.append(std::move(other));
      ASSERT_TRUE(written) << written.error().message;
      ++forced_;
      return deliver(std::move(done), fail(Error{Errc::version_conflict, "forced", written->version}));
    }
    inner_.append_async(std::move(req), [this, done = std::move(done)](Result<es::AppendResult> r) mutable {
      deliver(std::move(done), std::move(r));
    });
  }

  Result<std::vector<es::RecordedEvent>> read_stream(const es::StreamId& id, es::StreamVersion from, std::size_t max,
                                                     es::Direction d) override {
    watch("read_stream");
    return inner_.read_stream(id, from, max, d);
  }
  Result<es::Position> scan_all(es::Position from, std::size_t max, const es::EventFilter& f,
                                const std::function<void(const es::RecordedEvent&)>& fn) override {
    watch("scan_all");
    return inner_.scan_all(from, max, f, fn);
  }
  Result<std::optional<es::RecordedEvent>> read_event(const std::string& event_id) override {
    watch("read_event");
    return inner_.read_event(event_id);
  }
  Result<es::Position> last_position() override {
    watch("last_position");
    return inner_.last_position();
  }
  Result<es::StreamVersion> stream_version(const es::StreamId& id) override {
    watch("stream_version");
    return inner_.stream_version(id);
  }
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string& key) override {
    watch("find_idempotency");
    return inner_.find_idempotency(key);
  }

  int forced() const { return forced_.load(); }
  // Reads made on neither the answering thread nor `caller`: by the handler's retry threads.
  int reads_elsewhere() const { return elsewhere_.load(); }
  std::thread::id caller;
  std::vector<std::string> violations() const {
    std::lock_guard lk(mu_);
    return violations_;
  }

 private:
  void watch(const char* what) {
    const auto me = std::this_thread::get_id();
    if (me == answerer_.get_id()) {
      std::lock_guard lk(mu_);
      violations_.push_back(std::string(what) + " on the thread that answers appends");
    } else if (me != caller) {
      ++elsewhere_;
    }
  }
  // Notified under the lock: the answer it queues may be the last the test waits for, and
  // the destructor (which takes the lock first) may destroy cv_ right after (TSan saw a
  // notify after the unlock race the destruction).
  void deliver(es::AppendCallback done, Result<es::AppendResult> r) {
    std::lock_guard lk(mu_);
    queue_.emplace_back(std::move(done), std::move(r));
    cv_.notify_one();
  }
  void answer_loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto [done, r] = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      done(std::move(r));
      lk.lock();
    }
  }

  std::atomic<int> appends_{0}, forced_{0}, elsewhere_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<es::AppendCallback, Result<es::AppendResult>>> queue_;
  std::vector<std::string> violations_;
  bool stopping_ = false;
  std::thread answerer_;  // last: started once the rest is ready
};

// Retries after a conflict read the store again, but never on the thread that answered the
// append: that is the store's writer, and every append behind it would wait.
TEST_F(CommandHandlerTest, RetriesNeverReadOnTheThreadThatAnswersAppends) {
  ASSERT_TRUE(run<Account>("hot", account::OpenAccount{"hot", ""}));
  ThreadWatchingStore watching(*store_);
  watching.caller = std::this_thread::get_id();
  int deposited = 0;
  {
    CommandHandler handler(watching, nullptr);
    for (int i = 0; i < 30; ++i) {
      std::promise<Result<Handled<Account>>> answer;
      handler.handle<Account>("hot", account::Deposit{10}, {},
                              [&](Result<Handled<Account>> r) { answer.set_value(std::move(r)); });
      auto r = answer.get_future().get();
      ASSERT_TRUE(r) << r.error().message;
      deposited += 10;
    }
  }
  EXPECT_GT(watching.forced(), 5);
  EXPECT_GT(watching.reads_elsewhere(), 0) << "no retry read the store: the test proves nothing";
  EXPECT_THAT(watching.violations(), ::testing::IsEmpty());
  auto loaded = handler_->load_until<Account>("hot", std::numeric_limits<es::StreamVersion>::max());
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->state.balance_cents, deposited + watching.forced());
}

}  // namespace
}  // namespace orderflow::app
