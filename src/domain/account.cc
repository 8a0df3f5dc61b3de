#include "domain/account.h"

#include <limits>

#include "domain/validation.h"

namespace orderflow::domain::account {
namespace {

using Events = std::vector<Event>;

std::string cents(std::int64_t amount) { return std::to_string(amount) + " cents"; }

std::optional<Error> check_refundable(const Refund& c) {
  const auto& charge = c.charge;
  if (!charge || charge->outcome == ChargeOutcome::declined) {
    return make_error(Errc::invalid_state, "order " + c.order_id + " was not charged to this account");
  }
  if (charge->outcome == ChargeOutcome::refunded) {
    return make_error(Errc::invalid_state, "order " + c.order_id + " was already refunded");
  }
  if (c.amount_cents != charge->amount_cents) {
    return make_error(Errc::invalid_state,
                      "amount_cents must equal the charged amount of " + cents(charge->amount_cents));
  }
  return std::nullopt;
}

}  // namespace

State initial_state() { return State{}; }

Result<Events> decide(const State& s, const Command& command) {
  if (!s.exists && !std::holds_alternative<OpenAccount>(command)) {
    return fail(Errc::not_found, "account does not exist");
  }
  return std::visit(
      overloaded{
          [&](const OpenAccount& c) -> Result<Events> {
            if (auto e = check_id("account_id", c.account_id)) return fail(*e);
            if (s.exists) return fail(Errc::already_exists, "account " + c.account_id + " already exists");
            return Events{AccountOpened{c.account_id, c.owner}};
          },
          [&](const Deposit& c) -> Result<Events> {
            if (auto e = check_at_least("amount_cents", c.amount_cents, 1)) return fail(*e);
            if (c.amount_cents > std::numeric_limits<std::int64_t>::max() - s.balance_cents) {
              return fail(Errc::validation_failed, "amount_cents is too large for the balance");
            }
            return Events{FundsDeposited{c.amount_cents}};
          },
          [&](const Withdraw& c) -> Result<Events> {
            if (auto e = check_at_least("amount_cents", c.amount_cents, 1)) return fail(*e);
            if (c.amount_cents > s.balance_cents) {
              return fail(Errc::insufficient_funds,
                          "amount_cents exceeds the balance of " + cents(s.balance_cents));
            }
            return Events{FundsWithdrawn{c.amount_cents}};
          },
          [&](const Charge& c) -> Result<Events> {
            if (auto e = check_at_least("amount_cents", c.amount_cents, 0)) return fail(*e);
            if (c.earlier) {
              return fail(Errc::invalid_state,
                          "order " + c.order_id + " was already charged to this account");
            }
            if (c.amount_cents > s.balance_cents) {
              return Events{ChargeDeclined{c.order_id, c.amount_cents, kDeclinedInsufficientFunds}};
            }
            return Events{AccountCharged{c.order_id, c.amount_cents}};
          },
          [&](const Refund& c) -> Result<Events> {
            if (auto e = check_at_least("amount_cents", c.amount_cents, 0)) return fail(*e);
            if (auto e = check_refundable(c)) return fail(*e);
            return Events{AccountRefunded{c.order_id, c.amount_cents}};
          },
      },
      command);
}

State evolve(State s, const Event& event) {
  std::visit(overloaded{
                 [&](const AccountOpened& e) {
                   s.exists = true;
                   s.account_id = e.account_id;
                   s.owner = e.owner;
                 },
                 [&](const FundsDeposited& e) { s.balance_cents += e.amount_cents; },
                 [&](const FundsWithdrawn& e) { s.balance_cents -= e.amount_cents; },
                 [&](const AccountCharged& e) { s.balance_cents -= e.amount_cents; },
                 [](const ChargeDeclined&) {},
                 [&](const AccountRefunded& e) { s.balance_cents += e.amount_cents; },
             },
             event);
  return s;
}

const char* event_type_name(const Event& event) {
  return std::visit([](const auto& e) { return e.kType; }, event);
}

}  // namespace orderflow::domain::account
