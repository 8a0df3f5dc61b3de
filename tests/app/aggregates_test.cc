#include "app/aggregates.h"

#include <cxxabi.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>

namespace orderflow::app {
namespace {

std::string demangled(const std::type_info& t) {
  std::unique_ptr<char, decltype(&std::free)> name(abi::__cxa_demangle(t.name(), nullptr, nullptr, nullptr),
                                                   &std::free);
  return name ? name.get() : t.name();
}

// command_name() names every alternative of A::Command as its struct is named.
template <class A, std::size_t... I>
void expect_command_names(std::index_sequence<I...>) {
  (
      [] {
        const std::string type = demangled(typeid(std::variant_alternative_t<I, typename A::Command>));
        const std::string name = command_name<A>(typename A::Command(std::in_place_index<I>));
        EXPECT_EQ(type.substr(type.rfind("::") + 2), name);
      }(),
      ...);
}

TEST(Aggregates, CommandNamesFollowTheCommandVariant) {
  expect_command_names<Product>(std::make_index_sequence<std::variant_size_v<Product::Command>>());
  expect_command_names<Account>(std::make_index_sequence<std::variant_size_v<Account::Command>>());
  expect_command_names<Order>(std::make_index_sequence<std::variant_size_v<Order::Command>>());
}

}  // namespace
}  // namespace orderflow::app
