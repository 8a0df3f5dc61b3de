#include "app/command_handler.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "codec/domain_codec.h"
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
class StagingStore final : public es::EventStore {
 public:
  explicit StagingStore(es::EventStore& inner) : inner_(inner) {}

  void append_async(es::AppendRequest req, es::AppendCallback done) override {
    auto version = inner_.stream_version(req.stream_id);
    auto last = inner_.last_position();
    const auto n = static_cast<std::int64_t>(req.events.size());
    if (req.on_staged) req.on_staged({*version + n, *last + n});
    held_.push_back({std::move(req), std::move(done)});
  }
  std::size_t held() const { return held_.size(); }
  void write_first() { take().run(inner_); }
  void fail_first() { take().done(fail(Errc::unavailable, "injected: the batch failed its sync")); }

  Result<std::vector<es::RecordedEvent>> read_stream(const std::string& id, es::StreamVersion from, std::size_t max,
                                                     es::Direction d) override {
    return inner_.read_stream(id, from, max, d);
  }
  Result<es::Position> scan_all(es::Position from, std::size_t max, const es::EventFilter& f,
                                const std::function<void(const es::RecordedEvent&)>& fn) override {
    return inner_.scan_all(from, max, f, fn);
  }
  Result<std::optional<es::RecordedEvent>> read_event(const std::string& event_id) override {
    return inner_.read_event(event_id);
  }
  Result<es::Position> last_position() override { return inner_.last_position(); }
  Result<es::StreamVersion> stream_version(const std::string& id) override { return inner_.stream_version(id); }
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string& key) override {
    return inner_.find_idempotency(key);
  }
  bool wait_for_events(es::Position after, std::chrono::milliseconds timeout) override {
    return inner_.wait_for_events(after, timeout);
  }

 private:
  struct Held {
    es::AppendRequest req;
    es::AppendCallback done;
    void run(es::EventStore& store) { store.append_async(std::move(req), std::move(done)); }
  };
  Held take() {
    Held h = std::move(held_.front());
    held_.erase(held_.begin());
    return h;
  }
  es::EventStore& inner_;
  std::vector<Held> held_;
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
    ASSERT_EQ(staging.held(), 1u);
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

}  // namespace
}  // namespace orderflow::app
