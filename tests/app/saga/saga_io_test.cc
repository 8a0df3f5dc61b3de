// find_charge: an order's charge on an account, read from the store by the charge's and
// the refund's derived event ids (what a Charge or Refund decides on).
#include "app/saga/saga_io.h"

#include <gtest/gtest.h>

#include <random>

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

}  // namespace
}  // namespace orderflow::app::saga
