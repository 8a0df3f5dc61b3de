// find_charge: an order's charge on an account, read from the store by the charge's and
// the refund's derived event ids (what a Charge or Refund decides on); KnownEvents: those
// facts for a list of commands, looked up at once.
#include "app/saga/saga_io.h"

#include <gtest/gtest.h>

#include <random>

#include "app/forwarding_event_store.h"
#include "app/saga/sim_event_store.h"
#include "codec/domain_codec.h"

namespace orderflow::app::saga {
namespace {

namespace account = domain::account;
using account::ChargeOutcome;
using account::OrderCharge;

class FindChargeTest : public ::testing::Test {
 protected:
  void append(const std::string& account_id, const std::string& event_id, const account::Event& e) {
    es::AppendRequest req;
    req.stream_id = stream_of<Account>(account_id);
    req.events.push_back({event_id, account::event_type_name(e), 1, codec::encode_event(e), "{}"});
    ASSERT_TRUE(store_.append(std::move(req)));
  }
  std::optional<OrderCharge> find(const std::string& account_id, const std::string& order_id) {
    auto found = find_charge(store_, account_id, order_id);
    EXPECT_TRUE(found) << found.error().message;
    return found ? *found : std::nullopt;
  }

  std::mt19937_64 rng_{1};
  orderflow::testing::SimEventStore store_{rng_};
};

TEST_F(FindChargeTest, AnOrderNeverChargedHasNoCharge) {
  append("ann", "opened", account::AccountOpened{"ann", ""});
  EXPECT_EQ(find("ann", "o1"), std::nullopt);
}

TEST_F(FindChargeTest, AChargeIsFoundWithItsAmountAndThenAsRefunded) {
  append("ann", derived_event_id("o1", "charge"), account::AccountCharged{"o1", 250});
  EXPECT_EQ(find("ann", "o1"), (OrderCharge{250, ChargeOutcome::charged}));
  append("ann", derived_event_id("o1", "refund"), account::AccountRefunded{"o1", 250});
  EXPECT_EQ(find("ann", "o1"), (OrderCharge{250, ChargeOutcome::refunded}));
}

TEST_F(FindChargeTest, ADeclinedChargeIsFound) {
  append("ann", derived_event_id("o1", "charge"), account::ChargeDeclined{"o1", 900, "insufficient_funds"});
  EXPECT_EQ(find("ann", "o1"), (OrderCharge{900, ChargeOutcome::declined}));
}

TEST_F(FindChargeTest, AnotherAccountsOrAnotherOrdersChargeIsNotThisOne) {
  append("ann", derived_event_id("o1", "charge"), account::AccountCharged{"o1", 250});
  EXPECT_EQ(find("bob", "o1"), std::nullopt);
  EXPECT_EQ(find("ann", "o2"), std::nullopt);
}

namespace product = domain::product;

// Counts the store's look-ups by event id.
class CountingStore : public orderflow::testing::ForwardingEventStore {
 public:
  using ForwardingEventStore::ForwardingEventStore;
  Result<std::optional<es::RecordedEvent>> read_event(const std::string& event_id) override {
    ++single;
    return ForwardingEventStore::read_event(event_id);
  }
  Result<std::vector<es::RecordedEvent>> read_events(std::span<const std::string> event_ids) override {
    ++several;
    return ForwardingEventStore::read_events(event_ids);
  }
  int single = 0, several = 0;
};

class KnownEventsTest : public FindChargeTest {
 protected:
  void reserve(const std::string& product_id, const std::string& order_id, std::int64_t quantity) {
    es::AppendRequest req;
    req.stream_id = stream_of<Product>(product_id);
    product::Event e = product::StockReserved{order_id, quantity};
    req.events.push_back({derived_event_id(order_id, "reserve:" + product_id), product::event_type_name(e), 1,
                          codec::encode_event(e), "{}"});
    ASSERT_TRUE(store_.append(std::move(req)));
  }
  static SagaCommand refund(const std::string& order_id, const std::string& account_id) {
    return SagaCommand{order_id, derived_event_id(order_id, "refund"),
                       AccountCommand{account_id, account::Refund{order_id, 250, std::nullopt}}, std::nullopt};
  }
  static SagaCommand commit(const std::string& order_id, const std::string& product_id) {
    return SagaCommand{order_id, derived_event_id(order_id, "commit:" + product_id),
                       ProductCommand{product_id, product::CommitStock{order_id, 2, 0}}, std::nullopt};
  }
  CountingStore counting_{store_};
};

TEST_F(KnownEventsTest, TheFactsOfAListAreReadInOneLookUpAndAnsweredFromIt) {
  append("ann", derived_event_id("o1", "charge"), account::AccountCharged{"o1", 250});
  reserve("shoe", "o2", 2);
  const std::vector<SagaCommand> commands{refund("o1", "ann"), commit("o2", "shoe")};
  auto known = KnownEvents::look_up(counting_, commands);
  ASSERT_TRUE(known) << known.error().message;
  EXPECT_EQ(counting_.several, 1);
  EXPECT_TRUE(known->covers("o1"));
  EXPECT_TRUE(known->covers("o2"));
  // Answered from the look-up: the store is not read again, and a refund stored since is
  // not seen (the runner dispatches right after its look-up; the store has it then).
  append("ann", derived_event_id("o1", "refund"), account::AccountRefunded{"o1", 250});
  auto charge = find_charge(counting_, "ann", "o1", &*known);
  ASSERT_TRUE(charge) << charge.error().message;
  EXPECT_EQ(*charge, (OrderCharge{250, ChargeOutcome::charged}));
  auto held = find_held(counting_, "shoe", "o2", &*known);
  ASSERT_TRUE(held) << held.error().message;
  EXPECT_EQ(*held, 2);
  EXPECT_EQ(counting_.single, 0);
  // Without it, the store as it is now.
  EXPECT_EQ(find("ann", "o1"), (OrderCharge{250, ChargeOutcome::refunded}));
}

TEST_F(KnownEventsTest, AnOrderWithTwoCommandsInTheListIsLeftToReadTheStore) {
  append("ann", derived_event_id("o1", "charge"), account::AccountCharged{"o1", 250});
  reserve("shoe", "o1", 2);
  const std::vector<SagaCommand> commands{refund("o1", "ann"), commit("o1", "shoe"), commit("o3", "shoe")};
  auto known = KnownEvents::look_up(counting_, commands);
  ASSERT_TRUE(known) << known.error().message;
  EXPECT_FALSE(known->covers("o1"));
  EXPECT_TRUE(known->covers("o3"));
  EXPECT_EQ(known->find(derived_event_id("o1", "charge")), nullptr);
  const auto* absent = known->find(derived_event_id("o3", "reserve:shoe"));
  ASSERT_NE(absent, nullptr);
  EXPECT_FALSE(absent->has_value());
}

}  // namespace
}  // namespace orderflow::app::saga
