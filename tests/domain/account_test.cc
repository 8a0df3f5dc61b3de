#include "domain/account.h"

#include <gtest/gtest.h>

#include <limits>

#include "domain/decider_spec.h"

namespace orderflow::domain::account {
namespace {

auto given(std::vector<Event> history) { return spec::given(decider, std::move(history)); }

const AccountOpened kOpened{"alice", "Alice"};
const std::string kOrder = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
// What the store holds of kOrder's charge, as the application looks it up.
const OrderCharge kCharged{100, ChargeOutcome::charged};
const OrderCharge kDeclined{100, ChargeOutcome::declined};
const OrderCharge kRefunded{100, ChargeOutcome::refunded};

// ---- OpenAccount

TEST(Account, OpenDecidesAccountOpened) { given({}).when(OpenAccount{"alice", "Alice"}).then({kOpened}); }

TEST(Account, OpenWithoutOwnerIsAllowed) {
  given({}).when(OpenAccount{"bob", ""}).then({AccountOpened{"bob", ""}});
}

TEST(Account, OpenExistingIsAlreadyExists) {
  given({kOpened}).when(OpenAccount{"alice", "Alice"}).then_error(Errc::already_exists, "alice");
}

TEST(Account, OpenRejectsIdOutsideCharset) {
  given({}).when(OpenAccount{"alice/1", "Alice"}).then_error(Errc::validation_failed, "account_id");
}

// ---- Deposit

TEST(Account, DepositDecidesFundsDeposited) {
  given({kOpened}).when(Deposit{500}).then({FundsDeposited{500}});
}

TEST(Account, DepositToMissingAccountIsNotFound) {
  given({}).when(Deposit{500}).then_error(Errc::not_found, "account");
}

TEST(Account, DepositRejectsZeroAmount) {
  given({kOpened}).when(Deposit{0}).then_error(Errc::validation_failed, "amount_cents must be at least 1");
}

TEST(Account, DepositRejectsOverflowingAmount) {
  given({kOpened, FundsDeposited{1}})
      .when(Deposit{std::numeric_limits<std::int64_t>::max()})
      .then_error(Errc::validation_failed, "amount_cents");
}

// ---- Withdraw

TEST(Account, WithdrawTheWholeBalanceDecidesFundsWithdrawn) {
  given({kOpened, FundsDeposited{500}}).when(Withdraw{500}).then({FundsWithdrawn{500}});
}

TEST(Account, WithdrawOverBalanceIsInsufficientFunds) {
  given({kOpened, FundsDeposited{500}}).when(Withdraw{501}).then_error(Errc::insufficient_funds, "500 cents");
}

TEST(Account, WithdrawRejectsZeroAmount) {
  given({kOpened, FundsDeposited{500}}).when(Withdraw{0}).then_error(Errc::validation_failed, "amount_cents");
}

TEST(Account, WithdrawFromMissingAccountIsNotFound) {
  given({}).when(Withdraw{1}).then_error(Errc::not_found, "account");
}

// ---- Charge

TEST(Account, ChargeWithinBalanceDecidesAccountCharged) {
  given({kOpened, FundsDeposited{500}}).when(Charge{kOrder, 500}).then({AccountCharged{kOrder, 500}});
}

TEST(Account, ChargeOverBalanceDecidesChargeDeclined) {
  given({kOpened, FundsDeposited{500}})
      .when(Charge{kOrder, 501})
      .then({ChargeDeclined{kOrder, 501, "insufficient_funds"}});
}

TEST(Account, ChargeOfZeroIsAllowed) {
  given({kOpened}).when(Charge{kOrder, 0}).then({AccountCharged{kOrder, 0}});
}

TEST(Account, ChargeRejectsNegativeAmount) {
  given({kOpened})
      .when(Charge{kOrder, -1})
      .then_error(Errc::validation_failed, "amount_cents must not be negative");
}

TEST(Account, ChargeOnMissingAccountIsNotFound) {
  given({}).when(Charge{kOrder, 1}).then_error(Errc::not_found, "account");
}

TEST(Account, SecondChargeForAnOrderIsInvalidState) {
  given({kOpened, FundsDeposited{500}, AccountCharged{kOrder, 100}})
      .when(Charge{kOrder, 100, kCharged})
      .then_error(Errc::invalid_state, kOrder);
}

TEST(Account, ChargeAfterADeclineForTheSameOrderIsInvalidState) {
  given({kOpened, ChargeDeclined{kOrder, 100, "insufficient_funds"}, FundsDeposited{500}})
      .when(Charge{kOrder, 100, kDeclined})
      .then_error(Errc::invalid_state, kOrder);
}

TEST(Account, ChargeAfterARefundForTheSameOrderIsInvalidState) {
  given({kOpened, FundsDeposited{500}, AccountCharged{kOrder, 100}, AccountRefunded{kOrder, 100}})
      .when(Charge{kOrder, 100, kRefunded})
      .then_error(Errc::invalid_state, kOrder);
}

// ---- Refund

TEST(Account, RefundOfAChargeDecidesAccountRefunded) {
  given({kOpened, FundsDeposited{500}, AccountCharged{kOrder, 100}})
      .when(Refund{kOrder, 100, kCharged})
      .then({AccountRefunded{kOrder, 100}});
}

TEST(Account, RefundOfAnOrderNeverChargedIsInvalidState) {
  given({kOpened, FundsDeposited{500}})
      .when(Refund{kOrder, 100})
      .then_error(Errc::invalid_state, "was not charged");
}

TEST(Account, RefundOfADeclinedChargeIsInvalidState) {
  given({kOpened, ChargeDeclined{kOrder, 100, "insufficient_funds"}})
      .when(Refund{kOrder, 100, kDeclined})
      .then_error(Errc::invalid_state, "was not charged");
}

TEST(Account, SecondRefundIsInvalidState) {
  given({kOpened, FundsDeposited{500}, AccountCharged{kOrder, 100}, AccountRefunded{kOrder, 100}})
      .when(Refund{kOrder, 100, kRefunded})
      .then_error(Errc::invalid_state, "already refunded");
}

TEST(Account, RefundOfAnotherAmountIsInvalidState) {
  given({kOpened, FundsDeposited{500}, AccountCharged{kOrder, 100}})
      .when(Refund{kOrder, 50, kCharged})
      .then_error(Errc::invalid_state, "amount_cents must equal the charged amount of 100 cents");
}

TEST(Account, RefundRejectsNegativeAmount) {
  given({kOpened, FundsDeposited{500}, AccountCharged{kOrder, 100}})
      .when(Refund{kOrder, -100, kCharged})
      .then_error(Errc::validation_failed, "amount_cents");
}

TEST(Account, RefundOnMissingAccountIsNotFound) {
  given({}).when(Refund{kOrder, 1}).then_error(Errc::not_found, "account");
}

// ---- evolve

TEST(Account, EvolveKeepsTheBalanceAndNothingPerOrder) {
  const std::string declined = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";
  State s = fold(decider, initial_state(),
                 {kOpened, FundsDeposited{1000}, FundsWithdrawn{300}, AccountCharged{kOrder, 200},
                  ChargeDeclined{declined, 900, "insufficient_funds"}, AccountRefunded{kOrder, 200}});
  State expected;
  expected.exists = true;
  expected.account_id = "alice";
  expected.owner = "Alice";
  expected.balance_cents = 700;
  EXPECT_EQ(s, expected);
}

TEST(Account, EventTypeNamesAreTheApiTypes) {
  EXPECT_STREQ(event_type_name(kOpened), "AccountOpened");
  EXPECT_STREQ(event_type_name(FundsDeposited{}), "FundsDeposited");
  EXPECT_STREQ(event_type_name(FundsWithdrawn{}), "FundsWithdrawn");
  EXPECT_STREQ(event_type_name(AccountCharged{}), "AccountCharged");
  EXPECT_STREQ(event_type_name(ChargeDeclined{}), "ChargeDeclined");
  EXPECT_STREQ(event_type_name(AccountRefunded{}), "AccountRefunded");
}

}  // namespace
}  // namespace orderflow::domain::account
