// The entity projections' batches: many events of one entity fold into one row write,
// states not in memory are folded again from the store, and a failed batch leaves no
// trace in memory or in the read model.
#include "app/projections/entities.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include "app/projections/read_model_backends.h"
#include "codec/domain_codec.h"
#include "core/uuid.h"
#include "store/sqlite/sqlite_event_store.h"

namespace orderflow::app::projections {
namespace {

using namespace domain::account;
using testing::ReadModelBackend;

class EntitiesTest : public ::testing::TestWithParam<ReadModelBackend> {
 protected:
  void SetUp() override {
    if (auto why = place_.unavailable(); !why.empty()) GTEST_SKIP() << why;
    sqlite::SqliteEventStoreOptions o;
    o.path = place_.dir().file("events.db");
    store_ = std::move(*sqlite::SqliteEventStore::open(o));
    db_ = place_.open();
    ASSERT_TRUE(*db_->claim("accounts"));
    accounts_ = std::make_unique<AccountsProjection>(*db_, *store_);
  }

  // Opens account "a" and deposits 1, 2, …, n cents; answers the events as recorded.
  std::vector<es::RecordedEvent> open_and_deposit(int n) {
    std::vector<es::NewEvent> events{new_event(AccountOpened{"a", "Owner"})};
    for (int i = 1; i <= n; ++i) events.push_back(new_event(FundsDeposited{i}));
    EXPECT_TRUE(store_->append({"account-a", es::ExpectedVersion::no_stream(), std::move(events)}));
    return *store_->read_all(es::Position{1}, 100000, {});
  }

  static es::NewEvent new_event(const Event& e) {
    return {uuid_v7(), event_type_name(e), codec::kEventSchemaVersion, codec::encode_event(e), "{}"};
  }

  // A fresh writer on the live copy: nothing of earlier batches in memory.
  std::unique_ptr<es::ReadModel> live() { return std::move(*accounts_->open_live()); }

  static Result<void> apply(es::ReadModel& copy, std::span<const es::RecordedEvent> events) {
    return copy.apply(events, events.back().position);
  }

  void expect_account(std::int64_t balance, es::StreamVersion version, std::size_t ledger) {
    auto doc = *accounts_->get("a");
    ASSERT_TRUE(doc);
    EXPECT_EQ(doc->version, version);
    EXPECT_NE(doc->json.find("\"balance_cents\":" + std::to_string(balance) + ","), std::string::npos) << doc->json;
    EXPECT_EQ(accounts_->transactions("a", 100000, es::Position{0})->size(), ledger);
  }

  testing::ReadModelPlace place_{GetParam()};
  std::unique_ptr<sqlite::SqliteEventStore> store_;
  std::unique_ptr<es::ReadModelDb> db_;
  std::unique_ptr<AccountsProjection> accounts_;
};

TEST_P(EntitiesTest, ManyEventsOfOneEntityInOneBatch) {
  auto events = open_and_deposit(500);
  auto copy = live();
  ASSERT_TRUE(apply(*copy, events));
  expect_account(500 * 501 / 2, es::StreamVersion{500}, 500);
  ASSERT_TRUE(apply(*copy, events)) << "a batch delivered again";
  expect_account(500 * 501 / 2, es::StreamVersion{500}, 500);
}

TEST_P(EntitiesTest, AStateNotInMemoryIsFoldedAgainFromTheStore) {
  auto events = open_and_deposit(10);
  ASSERT_TRUE(apply(*live(), std::span(events).first(6)));
  expect_account(1 + 2 + 3 + 4 + 5, es::StreamVersion{5}, 5);
  // As after a restart: the rest of the log, on a writer that holds no state yet.
  ASSERT_TRUE(apply(*live(), std::span(events).subspan(6)));
  expect_account(55, es::StreamVersion{10}, 10);
  // Events the copy has applied, delivered again to a writer that holds no state.
  ASSERT_TRUE(apply(*live(), std::span(events).first(4)));
  expect_account(55, es::StreamVersion{10}, 10);
}

// Entities not in memory are loaded together (one query per 512), whatever their number.
TEST_P(EntitiesTest, ManyEntitiesNotInMemoryInOneBatch) {
  constexpr int kAccounts = 600;
  for (int i = 0; i < kAccounts; ++i) {
    const auto id = "m" + std::to_string(i);
    ASSERT_TRUE(
        store_->append({es::StreamId("account-" + id), es::ExpectedVersion::no_stream(), {new_event(AccountOpened{id, ""})}}));
  }
  const auto opened = *store_->read_all(es::Position{1}, 100000, {});
  ASSERT_TRUE(apply(*live(), opened));
  for (int i = 0; i < kAccounts; ++i)
    ASSERT_TRUE(store_->append({es::StreamId("account-m" + std::to_string(i)), es::ExpectedVersion::exact(es::StreamVersion{0}),
                                {new_event(FundsDeposited{i + 1}), new_event(FundsDeposited{1})}}));
  const auto all = *store_->read_all(es::Position{1}, 100000, {});
  ASSERT_TRUE(apply(*live(), std::span(all).subspan(opened.size())));  // a writer that holds no state
  for (int i : {0, 1, 511, 512, kAccounts - 1}) {
    auto doc = *accounts_->get("m" + std::to_string(i));
    ASSERT_TRUE(doc);
    EXPECT_EQ(doc->version, 2);
    EXPECT_NE(doc->json.find("\"balance_cents\":" + std::to_string(i + 2) + ","), std::string::npos) << doc->json;
  }
}

TEST_P(EntitiesTest, AFailedBatchLeavesNoTraceInMemoryOrInTheReadModel) {
  auto events = open_and_deposit(3);
  auto copy = live();
  ASSERT_TRUE(apply(*copy, std::span(events).first(2)));
  auto corrupt = events;
  corrupt[3].data = R"({"amount_cents":"lots"})";
  auto failed = apply(*copy, std::span(corrupt).subspan(2));
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("FundsDeposited"), std::string::npos) << failed.error().message;
  expect_account(1, es::StreamVersion{1}, 1);
  // The same writer goes on: the deposit of 2, folded by the failed batch, counts once.
  ASSERT_TRUE(apply(*copy, std::span(events).subspan(2)));
  expect_account(1 + 2 + 3, es::StreamVersion{3}, 3);
}

// An account's charges grow with every order it pays for; its document shows only the
// balance, so the writer's memory must not keep them: what the writer frees when it goes,
// after folding 20000 charges, is small (it was ~2.5 MB while an account's state kept its
// charges by order and the writer had to trim them).
TEST_P(EntitiesTest, FoldedStatesKeepNoChargesByOrder) {
  constexpr int kCharges = 20000;
  std::vector<es::NewEvent> events{new_event(AccountOpened{"a", "Owner"}), new_event(FundsDeposited{kCharges})};
  for (int i = 0; i < kCharges; ++i) events.push_back(new_event(AccountCharged{uuid_v7(), 1}));
  ASSERT_TRUE(store_->append({"account-a", es::ExpectedVersion::no_stream(), std::move(events)}));
  const auto all = *store_->read_all(es::Position{1}, 100000, {});
  auto copy = live();
  ASSERT_TRUE(apply(*copy, all));
  expect_account(0, es::StreamVersion{kCharges + 1}, kCharges + 1);
  const auto with_writer = mallinfo2().uordblks;
  copy.reset();
  const auto held = static_cast<std::int64_t>(with_writer) - static_cast<std::int64_t>(mallinfo2().uordblks);
  EXPECT_LT(held, 256 << 10) << "bytes the writer held";
}

INSTANTIATE_TEST_SUITE_P(Backends, EntitiesTest,
                         ::testing::Values(ReadModelBackend::sqlite, ReadModelBackend::postgres),
                         testing::backend_name);

}  // namespace
}  // namespace orderflow::app::projections
