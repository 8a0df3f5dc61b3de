// Given/when/then for deciders (Emmett's deciderSpecification, cqrs-es's test framework):
//   given({ProductRegistered{...}}).when(AddStock{3}).then({StockAdded{3}});
//   given({}).when(AddStock{3}).then_error(Errc::not_found, "product");
// Each test file wraps spec::given with its aggregate's decider.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/result.h"
#include "domain/decider.h"

namespace orderflow::domain::spec {

template <class Event>
std::string type_names(const std::vector<Event>& events) {
  std::string names = "[";
  for (const Event& e : events) {
    if (names.size() > 1) names += ", ";
    names += std::visit([](const auto& alt) { return alt.kType; }, e);
  }
  return names + "]";
}

template <class Command, class State, class Event>
class Spec {
 public:
  Spec(Decider<Command, State, Event> decider, std::vector<Event> history)
      : decider_(decider), history_(std::move(history)) {}

  Spec& when(Command command) {
    command_ = std::move(command);
    return *this;
  }

  void then(const std::vector<Event>& expected) const {
    auto decided = decide();
    ASSERT_TRUE(decided.has_value()) << "rejected with " << errc_name(decided.error().code) << ": "
                                     << decided.error().message;
    EXPECT_TRUE(*decided == expected) << "expected " << type_names(expected) << "\n decided "
                                      << type_names(*decided) << " (or the same types with other fields)";
  }

  // The rejection's message must mention `mentions` (the field or rule it names).
  void then_error(Errc code, std::string_view mentions = {}) const {
    auto decided = decide();
    ASSERT_FALSE(decided.has_value()) << "accepted, decided " << type_names(*decided);
    EXPECT_EQ(errc_name(decided.error().code), std::string(errc_name(code))) << decided.error().message;
    EXPECT_FALSE(decided.error().message.empty());
    EXPECT_TRUE(decided.error().message.find(mentions) != std::string::npos)
        << "message \"" << decided.error().message << "\" does not mention \"" << mentions << "\"";
  }

 private:
  Result<std::vector<Event>> decide() const {
    OF_CHECK(command_.has_value(), "then() without when()");
    return decider_.decide(fold(decider_, decider_.initial_state(), history_), *command_);
  }

  Decider<Command, State, Event> decider_;
  std::vector<Event> history_;
  std::optional<Command> command_;
};

template <class Command, class State, class Event>
Spec<Command, State, Event> given(Decider<Command, State, Event> decider, std::vector<Event> history) {
  return {decider, std::move(history)};
}

}  // namespace orderflow::domain::spec
