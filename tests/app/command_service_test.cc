// The command service: Idempotency-Key replays byte for byte, a key reused for another
// request, a retry racing its first try, and admission refusing new work only.
#include "app/command_service.h"

#include <gtest/gtest.h>

#include <future>
#include <limits>

#include "codec/domain_codec.h"
#include "forwarding_event_store.h"
#include "store/sqlite/sqlite_event_store.h"
#include "support/temp_dir.h"

namespace orderflow::app {
namespace {

using namespace domain;
using namespace std::chrono_literals;

// A store whose find_idempotency finds nothing while `hide` is set, as when a request's
// first try is still landing: find_idempotency_settled waits for it and finds it.
class LandingStore final : public testing::ForwardingEventStore {
 public:
  using ForwardingEventStore::ForwardingEventStore;
  bool hide = false;
  // Set: the records expire just before find_idempotency_settled looks, as when a key's
  // retention ends between the store's check of it and the look-up of its answer.
  es::IdempotencyRecords* expire_on_settle = nullptr;
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string& key) override {
    if (hide) return std::optional<es::IdempotencyRecord>();
    return inner_.find_idempotency(key);
  }
  Result<std::optional<es::IdempotencyRecord>> find_idempotency_settled(const std::string& key) override {
    if (expire_on_settle) {
      auto expired = expire_on_settle->expire_idempotency(std::numeric_limits<std::int64_t>::max(), 1000);
      if (!expired) return fail(expired.error());
      expire_on_settle = nullptr;
    }
    return inner_.find_idempotency_settled(key);
  }
};

class CommandServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sqlite::SqliteEventStoreOptions o;
    o.path = dir_.file("events.db");
    store_ = std::move(*sqlite::SqliteEventStore::open(o));
    landing_ = std::make_unique<LandingStore>(*store_);
    handler_ = std::make_unique<CommandHandler>(*landing_, nullptr);
    AdmissionLimits limits;
    limits.append_queue = 10;
    limits.refresh = 0ms;
    admission_ = std::make_unique<Admission>(limits, AdmissionGauges{.append_queue = [this] { return queue_.load(); }});
    service_ = std::make_unique<CommandService>(*handler_, admission_.get());
  }

  template <class A>
  Result<CommandResult> execute(CommandRequest<A> request) {
    std::promise<Result<CommandResult>> answer;
    service_->execute<A>(std::move(request), [&](Result<CommandResult> r) { answer.set_value(std::move(r)); });
    return answer.get_future().get();
  }

  // POST /api/v1/accounts as the HTTP route sends it, with `key` if not empty.
  static CommandRequest<Account> open_account(const std::string& id, const std::string& key,
                                              const std::string& owner = "") {
    CommandRequest<Account> r{id, account::OpenAccount{id, owner}};
    const std::string body = R"({"account_id":")" + id + R"(","owner":")" + owner + R"("})";
    if (!key.empty()) r.idempotency = idempotency_key(key, "POST /api/v1/accounts", body);
    r.status = 201;
    r.render = [id](const es::AppendResult& a) {
      return R"({"account_id":")" + id + R"(","version":)" + to_string(a.version) +
             R"(,"position":)" + to_string(a.position) + "}";
    };
    r.actor = "tester";
    return r;
  }

  es::Position last() { return *store_->last_position(); }

  testing::TempDir dir_;
  std::unique_ptr<sqlite::SqliteEventStore> store_;
  std::unique_ptr<LandingStore> landing_;
  std::unique_ptr<CommandHandler> handler_;
  std::atomic<std::int64_t> queue_{0};
  std::unique_ptr<Admission> admission_;
  std::unique_ptr<CommandService> service_;
};

TEST_F(CommandServiceTest, AnAcceptedCommandAnswersItsRenderedBody) {
  auto r = execute(open_account("ann", ""));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, R"({"account_id":"ann","version":0,"position":1})");
  EXPECT_EQ(r->version, 0);
  EXPECT_FALSE(r->replayed);
}

TEST_F(CommandServiceTest, AReplayIsTheFirstAnswerByteForByte) {
  auto first = execute(open_account("ann", "key-1"));
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_FALSE(first->replayed);
  // Another command moves the stream on: the replay still answers as the first time.
  CommandRequest<Account> deposit{"ann", account::Deposit{5}};
  deposit.render = [](const es::AppendResult&) { return std::string("{}"); };
  ASSERT_TRUE(execute(std::move(deposit)));
  const auto before = last();
  auto again = execute(open_account("ann", "key-1"));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->body, first->body);
  EXPECT_EQ(again->status, first->status);
  EXPECT_EQ(again->version, first->version);
  EXPECT_EQ(last(), before) << "a replay wrote";
}

TEST_F(CommandServiceTest, AKeyReusedForAnotherRequestIsRefused) {
  ASSERT_TRUE(execute(open_account("ann", "key-1")));
  const auto before = last();
  auto other = execute(open_account("bob", "key-1"));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Errc::idempotency_key_reused);
  EXPECT_EQ(last(), before);
}

// Records stored before the digest keep the canonical body itself: the same request still
// replays them.
TEST_F(CommandServiceTest, ARecordWithTheBodyItselfStillMatches) {
  const std::string body = R"({"account_id":"ann","owner":""})";
  es::AppendRequest stored{"account-ann", es::ExpectedVersion::no_stream(), {}, {}};
  stored.events.push_back({"44444444-4444-4444-8444-444444444444", "AccountOpened", codec::kEventSchemaVersion,
                           codec::encode_event(account::Event(account::AccountOpened{"ann", ""})), "{}"});
  stored.idempotency = es::IdempotencyRecord{"old-key", "POST /api/v1/accounts " + body, 201, "stored answer", 0};
  ASSERT_TRUE(store_->append(std::move(stored)));
  auto r = execute(open_account("ann", "old-key"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->replayed);
  EXPECT_EQ(r->body, "stored answer");
  EXPECT_EQ(r->status, 201);
}

// A client's retry sent while its first try was landing: not found at first, decided and
// refused (the account exists by then), it answers the first try's stored answer.
TEST_F(CommandServiceTest, ARetryRacingItsFirstTryAnswersTheFirstTry) {
  auto first = execute(open_account("ann", "key-1"));
  ASSERT_TRUE(first);
  landing_->hide = true;
  auto retry = execute(open_account("ann", "key-1"));
  ASSERT_TRUE(retry) << retry.error().message;
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->body, first->body);
  // The same race with another request under the key: the key is reused.
  auto other = execute(open_account("ann", "key-1", "someone else"));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Errc::idempotency_key_reused);
  // Refused with no try of its key stored: the command's own error.
  auto unrelated = execute(open_account("ann", "key-2"));
  ASSERT_FALSE(unrelated);
  EXPECT_EQ(unrelated.error().code, Errc::already_exists);
}

// Refused because its key was used, then the key's record expired before its answer was
// looked up: the key is new again, so the request runs as new instead of being refused.
TEST_F(CommandServiceTest, AKeyExpiringBetweenItsCheckAndItsAnswerRunsTheRequestAsNew) {
  ASSERT_TRUE(execute(open_account("ann", "")));
  auto deposit = [] {
    CommandRequest<Account> r{"ann", account::Deposit{5}};
    r.idempotency = idempotency_key("key-1", "POST /api/v1/accounts/ann/deposit", R"({"amount":5})");
    r.render = [](const es::AppendResult& a) { return R"({"version":)" + to_string(a.version) + "}"; };
    return r;
  };
  auto first = execute(deposit());
  ASSERT_TRUE(first) << first.error().message;
  landing_->hide = true;
  landing_->expire_on_settle = store_.get();
  auto again = execute(deposit());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(again->replayed);
  EXPECT_EQ(again->body, R"({"version":2})") << "a second deposit";
  EXPECT_EQ(landing_->expire_on_settle, nullptr) << "the key was refused and expired as staged";
  EXPECT_TRUE(*store_->find_idempotency("key-1")) << "the key is stored again, with the new answer";
}

TEST_F(CommandServiceTest, ARefusalWritesNothingAndAReplayIsNeverRefused) {
  auto first = execute(open_account("ann", "key-1"));
  ASSERT_TRUE(first);
  queue_ = 11;  // past the bound
  const auto before = last();
  auto refused = execute(open_account("bob", "key-2"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::overloaded);
  auto without_key = execute(open_account("cy", ""));
  ASSERT_FALSE(without_key);
  EXPECT_EQ(without_key.error().code, Errc::overloaded);
  EXPECT_EQ(last(), before) << "a refused request wrote";
  EXPECT_FALSE(*store_->find_idempotency("key-2")) << "a refused request stored its key";
  auto replay = execute(open_account("ann", "key-1"));
  ASSERT_TRUE(replay) << replay.error().message;
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->body, first->body);
  EXPECT_EQ(admission_->refused(AdmissionReason::append_queue), 2u);
}

}  // namespace
}  // namespace orderflow::app
