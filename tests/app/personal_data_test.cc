// Crypto-shredding (app/personal_data.h) on both stores' key tables (es/customer_keys.h): the
// same cases over SQLite and PostgreSQL (a scratch schema on ORDERFLOW_TEST_PG; skipped
// without it), as the event-store contract suite runs.
#include "app/personal_data.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "app/command_handler.h"
#include "app/projections/documents.h"
#include "app/relay/relay.h"
#include "codec/event_json.h"
#include "store/postgres/postgres_event_store.h"
#include "store/postgres/test_database.h"
#include "store/sqlite/sqlite_event_store.h"
#include "support/temp_dir.h"

namespace orderflow::app {
namespace {

using testing::TempDir;
using testing::TestSchema;

enum class Backend { sqlite, postgres };

// One test's store. open() opens it anew: on PostgreSQL as another process would (the
// embedded store allows one process at a time, so a second open there is the same store).
class Place {
 public:
  explicit Place(Backend backend) : backend_(backend) {}

  bool available() const { return backend_ == Backend::sqlite || testing::test_server(); }

  struct Opened {
    std::unique_ptr<sqlite::SqliteEventStore> sqlite;
    std::unique_ptr<postgres::PostgresEventStore> postgres;
    es::EventStore& events() { return sqlite ? static_cast<es::EventStore&>(*sqlite) : *postgres; }
    es::CustomerKeyStore& keys() { return sqlite ? static_cast<es::CustomerKeyStore&>(*sqlite) : *postgres; }
  };

  Opened open() const {
    Opened o;
    if (backend_ == Backend::sqlite) {
      sqlite::SqliteEventStoreOptions options;
      options.path = dir_.file("events.db");
      auto s = sqlite::SqliteEventStore::open(options);
      if (!s) throw std::runtime_error(s.error().message);
      o.sqlite = std::move(*s);
    } else {
      postgres::PostgresEventStoreOptions options;
      options.conninfo = testing::test_server();
      options.schema = schema_.name();
      auto s = postgres::PostgresEventStore::open(options);
      if (!s) throw std::runtime_error(s.error().message);
      o.postgres = std::move(*s);
    }
    return o;
  }

  const TempDir& dir() const { return dir_; }

 private:
  Backend backend_;
  TempDir dir_;
  TestSchema schema_;
};

class PersonalDataTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (!place_.available()) GTEST_SKIP() << "ORDERFLOW_TEST_PG is not set (scripts/pg-test-server.sh sets it)";
    store_ = place_.open();
  }

  PersonalData personal(PersonalDataOptions options = {}) { return personal(store_, std::move(options)); }
  PersonalData personal(Place::Opened& store, PersonalDataOptions options = {}) {
    return PersonalData(store.keys(), store.events(), std::move(options));
  }

  void open_account(const std::string& id) {
    es::AppendRequest req;
    req.stream_id = es::StreamId("account-" + id);
    req.events.push_back({"0190a0a0-0000-7000-8000-00000000a001", "AccountOpened", 1,
                          R"({"account_id":")" + id + R"(","owner":""})", "{}"});
    ASSERT_TRUE(store_.events().append(std::move(req)));
  }

  Place place_{GetParam()};
  Place::Opened store_;
};

TEST_P(PersonalDataTest, KeyTableMakesOneKeyPerCustomerAndErasesItForGood) {
  auto& keys = store_.keys();
  EXPECT_FALSE(keys.load_key("c-1")->has_value());
  const std::string a(32, 'a'), b(32, 'b'), c(32, 'c');
  EXPECT_EQ(*keys.create_key("c-1", a, 1000), a);
  EXPECT_EQ(*keys.create_key("c-1", b, 2000), a) << "insert-or-get: the key stored first";
  EXPECT_EQ((*keys.load_key("c-1"))->key, a);

  EXPECT_EQ(*keys.erase_key("c-1", 3000, false), std::optional(es::KeyErasure{3000, true}));
  auto erased = *keys.load_key("c-1");
  ASSERT_TRUE(erased);
  EXPECT_EQ(erased->key, "");
  EXPECT_EQ(erased->erased_at_ms, 3000);
  EXPECT_EQ(*keys.erase_key("c-1", 4000, false), std::optional(es::KeyErasure{3000, false})) << "idempotent";

  EXPECT_EQ(*keys.create_key("c-1", c, 5000), c) << "new data after an erasure gets a new key";
  EXPECT_EQ(*keys.erase_key("c-1", 6000, false), std::optional(es::KeyErasure{6000, true}));

  EXPECT_FALSE(keys.erase_key("nobody", 1000, false)->has_value());
  EXPECT_FALSE(keys.load_key("nobody")->has_value()) << "nothing recorded";
  EXPECT_EQ(*keys.erase_key("known", 7000, true), std::optional(es::KeyErasure{7000, true}));
  EXPECT_EQ(*keys.erase_key("known", 8000, true), std::optional(es::KeyErasure{7000, false}));
  EXPECT_EQ((*keys.load_key("known"))->key, "");
}

TEST_P(PersonalDataTest, SealedValuesAreRevealedInEveryJsonShapeAndErasedForGood) {
  auto pd = personal();
  auto owner = pd.seal("c-1", "Ada \"Countess\" Lovelace");
  auto address = pd.seal("c-1", "1 Analytical Row, London");
  auto other = pd.seal("c-2", "7 Yard Lane");
  ASSERT_TRUE(owner && address && other);
  EXPECT_TRUE(owner->starts_with(kSealedPrefix));
  EXPECT_EQ(owner->find("Lovelace"), std::string::npos);
  EXPECT_NE(*pd.seal("c-1", "1 Analytical Row, London"), *address) << "a fresh nonce each time";

  // Compact (events, SQLite documents) and spaced (as PostgreSQL's jsonb would print it).
  std::string json = R"({"events":[{"data":{"account_id":"c-1","owner":")" + *owner +
                     R"("}},{"data":{"customer_id":"c-1","shipping_address" : ")" + *address +
                     R"(","name":")" + *other + R"("}},{"shipping_address":")" + *other + R"("}]})";
  ASSERT_TRUE(pd.reveal(json));
  EXPECT_EQ(json, R"({"events":[{"data":{"account_id":"c-1","owner":"Ada \"Countess\" Lovelace"}},)"
                  R"({"data":{"customer_id":"c-1","shipping_address" : "1 Analytical Row, London","name":")" +
                      *other + R"("}},{"shipping_address":"7 Yard Lane"}]})")
      << "a sealed value outside a personal field is left as it is";

  std::string plain = R"({"owner":"Plain Old","shipping_address":null})";
  ASSERT_TRUE(pd.reveal(plain));
  EXPECT_EQ(plain, R"({"owner":"Plain Old","shipping_address":null})") << "plaintext from before sealing reads";

  auto erased = pd.erase("c-1");
  ASSERT_TRUE(erased);
  EXPECT_TRUE(erased->now);
  std::string again = R"({"owner":")" + *owner + R"(","x":{"shipping_address":")" + *address +
                      R"("},"y":{"shipping_address":")" + *other + R"("}})";
  ASSERT_TRUE(pd.reveal(again));
  EXPECT_EQ(again, R"({"owner":"[erased]","x":{"shipping_address":"[erased]"},"y":{"shipping_address":"7 Yard Lane"}})");

  auto repeat = pd.erase("c-1");
  ASSERT_TRUE(repeat);
  EXPECT_FALSE(repeat->now);
  EXPECT_EQ(repeat->erased_at_ms, erased->erased_at_ms);

  // A fresh cache (a restarted process) reads the same from the store.
  auto restarted = personal();
  EXPECT_EQ(*restarted.open(*owner), kErased);
  EXPECT_EQ(*restarted.open(*other), "7 Yard Lane");
  // New personal data after the erasure is sealed under a new key; the old stays erased.
  auto fresh = restarted.seal("c-1", "2 Looking Glass Rd");
  ASSERT_TRUE(fresh);
  EXPECT_EQ(*restarted.open(*fresh), "2 Looking Glass Rd");
  EXPECT_EQ(*restarted.open(*address), kErased);
  EXPECT_EQ(*pd.open(*address), kErased);
}

TEST_P(PersonalDataTest, AlteredOrMovedSealedValuesDoNotOpen) {
  auto pd = personal();
  auto sealed = *pd.seal("c-1", "secret street");
  (void)*pd.seal("c-2", "elsewhere");
  auto moved = sealed.substr(0, sealed.rfind(':')) + ":c-2";
  EXPECT_EQ(*pd.open(moved), kErased) << "the customer is in the additional data";
  auto altered = sealed;
  altered[kSealedPrefix.size() + 20] = altered[kSealedPrefix.size() + 20] == 'A' ? 'B' : 'A';
  EXPECT_EQ(*pd.open(altered), kErased);
  EXPECT_EQ(*pd.open(std::string(kSealedPrefix) + "!!:c-1"), kErased);
  EXPECT_EQ(*pd.open(std::string(kSealedPrefix) + "AAAA:nobody"), kErased) << "no key at all";
}

TEST_P(PersonalDataTest, ErasingAnUnknownCustomerIsNotFoundAndAnAccountWithoutPersonalDataIsKnown) {
  auto pd = personal();
  auto unknown = pd.erase("nobody");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Errc::not_found);
  open_account("anon");
  auto known = pd.erase("anon");
  ASSERT_TRUE(known) << known.error().message;
  EXPECT_TRUE(known->now);
  EXPECT_EQ(pd.erase("anon")->erased_at_ms, known->erased_at_ms);
}

TEST_P(PersonalDataTest, CommandsSealPersonalDataSoStatesEventsAndDocumentsHoldNoPlaintext) {
  auto pd = personal();
  CommandHandlerOptions options;
  options.personal_data = &pd;
  CommandHandler handler(store_.events(), nullptr, options);
  std::promise<Result<Handled<Account>>> opened;
  handler.handle<Account>("ada", domain::account::OpenAccount{"ada", "Ada Lovelace"}, {},
                          [&](Result<Handled<Account>> r) { opened.set_value(std::move(r)); });
  auto account = opened.get_future().get();
  ASSERT_TRUE(account) << account.error().message;
  EXPECT_TRUE(account->state->owner.starts_with(kSealedPrefix));

  std::promise<Result<Handled<Order>>> placed;
  domain::order::PlaceOrder place{"0190a0a0-0000-7000-8000-000000000001", "ada", {{"p-1", 1, 100}},
                                  std::string("1 Analytical Row"), 1};
  handler.handle<Order>(place.order_id, place, {}, [&](Result<Handled<Order>> r) { placed.set_value(std::move(r)); });
  auto order = placed.get_future().get();
  ASSERT_TRUE(order) << order.error().message;

  std::string all;
  auto events = store_.events().read_all(es::Position{1}, 100);
  ASSERT_TRUE(events);
  for (const auto& e : *events) codec::append_event_json(all, e);
  auto doc = projections::order_document(*order->state, order->result.version);
  EXPECT_EQ(all.find("Lovelace"), std::string::npos) << all;
  EXPECT_EQ(all.find("Analytical"), std::string::npos) << all;
  EXPECT_EQ(doc.find("Analytical"), std::string::npos) << doc;
  ASSERT_TRUE(pd.reveal(all) && pd.reveal(doc));
  EXPECT_NE(all.find(R"("owner":"Ada Lovelace")"), std::string::npos) << all;
  EXPECT_NE(doc.find(R"("shipping_address":"1 Analytical Row")"), std::string::npos) << doc;

  ASSERT_TRUE(pd.erase("ada"));
  all.clear();
  events = store_.events().read_all(es::Position{1}, 100);
  ASSERT_TRUE(events);
  for (const auto& e : *events) codec::append_event_json(all, e);
  doc = projections::order_document(*order->state, order->result.version);
  ASSERT_TRUE(pd.reveal(all) && pd.reveal(doc));
  EXPECT_NE(all.find(R"("owner":"[erased]")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("shipping_address":"[erased]")"), std::string::npos) << all;
  EXPECT_NE(doc.find(R"("shipping_address":"[erased]")"), std::string::npos) << doc;
}

// The bus gets what reads show: plaintext, or "[erased]"; never the sealed form.
TEST_P(PersonalDataTest, TheRelayPublishesPersonalDataAsReadsShowIt) {
  struct Capture : es::BusPublisher {
    std::mutex mu;
    std::vector<std::string> bodies;
    Result<void> publish(std::span<const es::BusMessage> messages) override {
      std::lock_guard lk(mu);
      for (const auto& m : messages) bodies.push_back(m.body);
      return {};
    }
    std::size_t size() {
      std::lock_guard lk(mu);
      return bodies.size();
    }
  } bus;
  auto pd = personal();
  CommandHandler handler(store_.events(), nullptr, {.personal_data = &pd});
  for (const auto* id : {"ada", "bob"}) {
    std::promise<Result<Handled<Account>>> opened;
    handler.handle<Account>(id, domain::account::OpenAccount{id, std::string("Owner ") + id}, {},
                            [&](Result<Handled<Account>> r) { opened.set_value(std::move(r)); });
    ASSERT_TRUE(opened.get_future().get());
  }
  ASSERT_TRUE(pd.erase("ada"));
  auto& checkpoints = store_.sqlite ? static_cast<es::CheckpointStore&>(*store_.sqlite) : *store_.postgres;
  relay::Relay relay(store_.events(), checkpoints, bus, {.bus = "test", .personal_data = &pd});
  relay.start();
  for (int i = 0; i < 500 && bus.size() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  relay.stop();
  ASSERT_EQ(bus.size(), 2u);
  EXPECT_NE(bus.bodies[0].find(R"("owner":"[erased]")"), std::string::npos) << bus.bodies[0];
  EXPECT_NE(bus.bodies[1].find(R"("owner":"Owner bob")"), std::string::npos) << bus.bodies[1];
}

TEST_P(PersonalDataTest, KeyCacheIsBoundedAndLeastRecentlyUsedGoesFirst) {
  std::int64_t now = 1'000'000;
  auto pd = personal({.cache_capacity = 2, .clock = [&] { return now; }});
  auto a = *pd.seal("a", "x"), b = *pd.seal("b", "y");
  (void)*pd.open(a);              // a is now the most recent
  (void)*pd.seal("c", "z");       // b goes
  ASSERT_TRUE(store_.keys().erase_key("b", now, false));  // behind the cache's back
  ASSERT_TRUE(store_.keys().erase_key("a", now, false));
  EXPECT_EQ(*pd.open(a), "x") << "a is cached (no TTL): the store is not asked";
  EXPECT_EQ(*pd.open(b), kErased) << "b was not cached: read from the store";
}

// PostgreSQL: processes on one database. Two race to make one customer's key; an erasure in one
// is seen by the other once its cached key is older than the TTL.
TEST_P(PersonalDataTest, ProcessesShareKeysAndSeeEachOthersErasuresWithinTheTtl) {
  if (GetParam() != Backend::postgres) GTEST_SKIP() << "one process at a time holds the embedded store";
  auto other = place_.open();
  std::int64_t now = 1'000'000;
  PersonalDataOptions options{.cache_ttl = std::chrono::milliseconds(1000), .clock = [&] { return now; }};
  auto here = personal(options);
  auto there = personal(other, options);

  std::vector<std::string> sealed(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < sealed.size(); ++i)
    threads.emplace_back([&, i] { sealed[i] = *(i % 2 ? here : there).seal("race", "v" + std::to_string(i)); });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    EXPECT_EQ(*here.open(sealed[i]), "v" + std::to_string(i));
    EXPECT_EQ(*there.open(sealed[i]), "v" + std::to_string(i));
  }

  ASSERT_TRUE(here.erase("race"));
  EXPECT_EQ(*here.open(sealed[0]), kErased) << "at once in the erasing process";
  EXPECT_EQ(*there.open(sealed[0]), "v0") << "the other trusts its cached key within the TTL";
  now += 1000;
  EXPECT_EQ(*there.open(sealed[0]), kErased) << "and asks the store once it is older";
}

TEST(PersonalDataSqliteTest, AFormat6StoreGetsItsKeyTableWhenOpened) {
  TempDir dir;
  sqlite::SqliteEventStoreOptions options;
  options.path = dir.file("events.db");
  {
    auto store = std::move(*sqlite::SqliteEventStore::open(options));
    es::AppendRequest req;
    req.stream_id = "account-old";
    req.events.push_back({"00000000-0000-7000-8000-000000000001", "AccountOpened", 1,
                          R"({"account_id":"old","owner":"Plain Old"})", "{}"});
    ASSERT_TRUE(store->append(std::move(req)));
  }
  {
    auto db = std::move(*sqlite::Database::open(options.path, false));
    ASSERT_TRUE(db.exec("DROP TABLE customer_keys; PRAGMA user_version = 6;"));
  }
  auto store = sqlite::SqliteEventStore::open(options);
  ASSERT_TRUE(store) << store.error().message;
  PersonalData pd(**store, **store);
  std::string json = (*(*store)->read_stream("account-old", es::StreamVersion{0}, 1, es::Direction::forward))[0].data;
  ASSERT_TRUE(pd.reveal(json));
  EXPECT_EQ(json, R"({"account_id":"old","owner":"Plain Old"})") << "plaintext of older events still reads";
  auto erased = pd.erase("old");
  ASSERT_TRUE(erased) << erased.error().message;
  EXPECT_TRUE(pd.seal("new", "x"));
}

INSTANTIATE_TEST_SUITE_P(Stores, PersonalDataTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         [](const auto& info) { return info.param == Backend::sqlite ? "Sqlite" : "Postgres"; });

}  // namespace
}  // namespace orderflow::app
