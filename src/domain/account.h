// The account aggregate (stream account-<account_id>): a customer's balance. Orders are
// paid from the account whose account_id is the order's customer_id.
//
// Promises: balance_cents >= 0 after any sequence of decided events. Given the facts a
// Charge or Refund carries (what the store holds of the order's charge on this account),
// an order is charged at most once (a declined attempt counts) and only a charge actually
// taken is refunded, once, in full. Those facts are looked up by the application (by the
// charge's and the refund's event ids, which it derives from the order), not kept here:
// the state does not grow with the account's orders.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/result.h"
#include "domain/decider.h"

namespace orderflow::domain::account {

// ---- commands

struct OpenAccount {
  std::string account_id;
  std::string owner;  // may be empty
};
struct Deposit {
  std::int64_t amount_cents = 0;
};
// Over the balance: rejected with insufficient_funds.
struct Withdraw {
  std::int64_t amount_cents = 0;
};
enum class ChargeOutcome { charged, declined, refunded };

// What the store holds of an order's charge on this account.
struct OrderCharge {
  std::int64_t amount_cents = 0;
  ChargeOutcome outcome = ChargeOutcome::charged;
  bool operator==(const OrderCharge&) const = default;
};

// Over the balance: decided as ChargeDeclined, not rejected. amount_cents may be 0 (an
// order of free products).
struct Charge {
  std::string order_id;
  std::int64_t amount_cents = 0;
  std::optional<OrderCharge> earlier;  // the order's charge already stored, if any
};
// amount_cents must equal the amount charged for the order.
struct Refund {
  std::string order_id;
  std::int64_t amount_cents = 0;
  std::optional<OrderCharge> charge;  // the order's charge as stored, if any
};

using Command = std::variant<OpenAccount, Deposit, Withdraw, Charge, Refund>;

// ---- events: names and fields as in docs/api.md §8; kType is the stored type string.

struct AccountOpened {
  static constexpr const char* kType = "AccountOpened";
  std::string account_id;
  std::string owner;
  bool operator==(const AccountOpened&) const = default;
};
struct FundsDeposited {
  static constexpr const char* kType = "FundsDeposited";
  std::int64_t amount_cents = 0;
  bool operator==(const FundsDeposited&) const = default;
};
struct FundsWithdrawn {
  static constexpr const char* kType = "FundsWithdrawn";
  std::int64_t amount_cents = 0;
  bool operator==(const FundsWithdrawn&) const = default;
};
struct AccountCharged {
  static constexpr const char* kType = "AccountCharged";
  std::string order_id;
  std::int64_t amount_cents = 0;
  bool operator==(const AccountCharged&) const = default;
};
inline constexpr const char* kDeclinedInsufficientFunds = "insufficient_funds";
struct ChargeDeclined {
  static constexpr const char* kType = "ChargeDeclined";
  std::string order_id;
  std::int64_t amount_cents = 0;
  std::string reason;  // kDeclinedInsufficientFunds
  bool operator==(const ChargeDeclined&) const = default;
};
struct AccountRefunded {
  static constexpr const char* kType = "AccountRefunded";
  std::string order_id;
  std::int64_t amount_cents = 0;
  bool operator==(const AccountRefunded&) const = default;
};

using Event = std::variant<AccountOpened, FundsDeposited, FundsWithdrawn, AccountCharged, ChargeDeclined,
                           AccountRefunded>;

// ---- state

struct State {
  bool exists = false;
  std::string account_id;
  std::string owner;
  std::int64_t balance_cents = 0;
  bool operator==(const State&) const = default;
};

State initial_state();
// Rejections: not_found (no account; every command but OpenAccount), already_exists,
// validation_failed (a field's value), insufficient_funds (Withdraw), invalid_state
// (a second charge for an order; a refund of an order not charged, already refunded or
// of another amount).
Result<std::vector<Event>> decide(const State& state, const Command& command);
State evolve(State state, const Event& event);
const char* event_type_name(const Event& event);

inline constexpr Decider<Command, State, Event> decider{&initial_state, &decide, &evolve};

}  // namespace orderflow::domain::account
