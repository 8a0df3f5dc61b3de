// How the fulfilment saga's commands reach the store, and where it looks up aggregates:
// shared by the server's SagaRunner and the simulation test, so both run the same path.
#pragma once

#include <functional>

#include "app/command_handler.h"
#include "app/saga/fulfilment_saga.h"

namespace orderflow::app::saga {

// Runs one command through the command handler (domain commands) or appends it
// (bookkeeping), with the command's derived event id and the order as correlation id.
// A Charge or Refund first gets the order's charge as the store holds it (find_charge),
// a ReleaseStock or CommitStock the units the order holds (find_held).
// `done` gets its Completion, possibly inline, possibly on the store's writer thread;
// a rejection's known_by is left 0 for the caller to fill from the store.
void dispatch(CommandHandler& commands, SagaCommand command, std::function<void(Completion)> done);

// The order's charge on the account as the store holds it: the AccountCharged or
// ChargeDeclined stored under the charge step's derived event id, refunded if an
// AccountRefunded is stored under the refund step's; nullopt if the order was never
// charged to this account. Read by event id (the store's index), so the account's state
// need not keep a charge per order.
Result<std::optional<domain::account::OrderCharge>> find_charge(es::EventStore& store, const std::string& account_id,
                                                                const std::string& order_id);

// The units of the product that the order holds as the store shows them: the quantity of
// the StockReserved stored under the reserve step's derived event id, less the
// StockReleased and StockCommitted under the release and commit steps' (0 if none was
// reserved). Read by event id, so the product's state need not keep a hold per order.
Result<std::int64_t> find_held(es::EventStore& store, const std::string& product_id, const std::string& order_id);

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
