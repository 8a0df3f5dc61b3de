// The three aggregates as the command handler sees them: decider, stream category, and
// how their events and state are encoded.
#pragma once

#include <string>

#include "codec/domain_codec.h"
#include "domain/account.h"
#include "domain/order.h"
#include "domain/product.h"

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
};
struct Account : AggregateTraits<domain::account::Command, domain::account::State, domain::account::Event,
                                 domain::account::decider> {
  static constexpr const char* category = "account";
  static const char* type_name(const Event& e) { return domain::account::event_type_name(e); }
};
struct Order : AggregateTraits<domain::order::Command, domain::order::State, domain::order::Event,
                               domain::order::decider> {
  static constexpr const char* category = "order";
  static const char* type_name(const Event& e) { return domain::order::event_type_name(e); }
};

template <class A>
std::string stream_of(const std::string& id) {
  return std::string(A::category) + "-" + id;
}

}  // namespace orderflow::app
