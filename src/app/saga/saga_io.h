// How the fulfilment saga's commands reach the store, and where it looks up aggregates:
// shared by the server's SagaRunner and the simulation test, so both run the same path.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "app/command_handler.h"
#include "app/saga/fulfilment_saga.h"

namespace orderflow::app::saga {

// The events that a list of commands' facts (find_charge, find_held) rest on, read from the
// store in one look-up (EventStore::read_events) before the commands are dispatched: on
// PostgreSQL one round trip for a batch, not one per command on the saga's thread. Only
// derived event ids are looked up, which only the saga writes, one step of an order at a
// time; a command whose order has another command in the list is not covered (the other's
// append may land first), and reads the store itself.
class KnownEvents {
 public:
  static Result<KnownEvents> look_up(es::EventStore& store, std::span<const SagaCommand> commands);

  bool covers(const std::string& order_id) const { return orders_.contains(order_id); }
  // The event stored under `event_id`, or none; nullptr if it was not looked up.
  const std::optional<es::RecordedEvent>* find(const std::string& event_id) const;
  // The derived event id of the order's `step` it looked up; nullptr if it did not.
  const std::string* id_of(const std::string& order_id, std::string_view step) const;

 private:
  std::unordered_set<std::string> orders_;
  std::unordered_map<std::string, std::optional<es::RecordedEvent>> events_;
  std::unordered_map<std::string, std::string> ids_;  // "order_id/step" -> its derived event id
};

// Runs one command through the command handler (domain commands) or appends it
// (bookkeeping), with the command's derived event id and the order as correlation id.
// A Charge or Refund first gets the order's charge as the store holds it (find_charge),
// a ReleaseStock or CommitStock the units the order holds (find_held), from `known` where
// it covers the order. `done` gets its Completion, possibly inline, possibly on the
// store's writer thread; a rejection's known_by is left 0 for the caller to fill from the
// store.
void dispatch(CommandHandler& commands, SagaCommand command, const KnownEvents* known,
              std::function<void(Completion)> done);

// The order's charge on the account as the store holds it: the AccountCharged or
// ChargeDeclined stored under the charge step's derived event id, refunded if an
// AccountRefunded is stored under the refund step's; nullopt if the order was never
// charged to this account. Read by event id (the store's index), so the account's state
// need not keep a charge per order.
Result<std::optional<domain::account::OrderCharge>> find_charge(es::EventStore& store, const std::string& account_id,
                                                                const std::string& order_id,
                                                                const KnownEvents* known = nullptr);

// The units of the product that the order holds as the store shows them: the quantity of
// the StockReserved stored under the reserve step's derived event id, less the
// StockReleased and StockCommitted under the release and commit steps' (0 if none was
// reserved). Read by event id, so the product's state need not keep a hold per order.
Result<std::int64_t> find_held(es::EventStore& store, const std::string& product_id, const std::string& order_id,
                               const KnownEvents* known = nullptr);

// Lookup over the command handler's loads, find_charge, find_held and the saga's own stream.
class HandlerLookup final : public Lookup {
 public:
  explicit HandlerLookup(CommandHandler& commands) : commands_(commands) {}
  Result<domain::order::State> order(const std::string& order_id) override;
  Result<std::int64_t> held(const std::string& product_id, const std::string& order_id) override;
  Result<std::optional<domain::account::ChargeOutcome>> charge(const std::string& account_id,
                                                               const std::string& order_id) override;
  Result<std::optional<SagaState>> last_end(const std::string& order_id) override;

 private:
  CommandHandler& commands_;
};

}  // namespace orderflow::app::saga
