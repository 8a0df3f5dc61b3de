// The three aggregates as the command handler sees them: decider, stream category, and
// how their events and state are encoded.
#pragma once

#include <array>
#include <string>
#include <variant>

#include "codec/domain_codec.h"
#include "domain/account.h"
#include "domain/order.h"
#include "domain/product.h"
#include "es/event.h"

namespace orderflow::app {

template <class Command_, class State_, class Event_, const auto& Decider_>
struct AggregateTraits {
  using Command = Command_;
  using State = State_;
  using Event = Event_;
  static constexpr const auto& decider = Decider_;
};

struct Product : AggregateTraits<domain::product::Command, domain::product::State, domain::product::Event,
                                 domain::product::decider> {
  static constexpr const char* category = "product";
  static const char* type_name(const Event& e) { return domain::product::event_type_name(e); }
  static constexpr std::array<const char*, 5> command_names{"RegisterProduct", "AddStock", "ReserveStock",
                                                            "ReleaseStock", "CommitStock"};
};
struct Account : AggregateTraits<domain::account::Command, domain::account::State, domain::account::Event,
                                 domain::account::decider> {
  static constexpr const char* category = "account";
  static const char* type_name(const Event& e) { return domain::account::event_type_name(e); }
  static constexpr std::array<const char*, 5> command_names{"OpenAccount", "Deposit", "Withdraw", "Charge",
                                                            "Refund"};
};
struct Order : AggregateTraits<domain::order::Command, domain::order::State, domain::order::Event,
                               domain::order::decider> {
  static constexpr const char* category = "order";
  static const char* type_name(const Event& e) { return domain::order::event_type_name(e); }
  static constexpr std::array<const char*, 5> command_names{"PlaceOrder", "ConfirmOrder", "CancelOrder",
                                                            "SettlePayment", "SetShippingStatus"};
};

// The command's type, as named in the Command variant (command_names in variant order).
template <class A>
const char* command_name(const typename A::Command& c) {
  static_assert(A::command_names.size() == std::variant_size_v<typename A::Command>);
  return A::command_names[c.index()];
}

template <class A>
es::StreamId stream_of(const std::string& id) {
  return es::StreamId(std::string(A::category) + "-" + id);
}

}  // namespace orderflow::app
