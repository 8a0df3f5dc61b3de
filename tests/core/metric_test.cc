#include "core/metric.h"

#include <gtest/gtest.h>

#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

namespace orderflow {
namespace {

inline constexpr std::array<double, 3> kBounds{0.1, 1, 10};

TEST(Histogram, BucketsAreCumulativeAndTheCountHoldsWhatIsAboveTheLastBound) {
  Histogram<kBounds> h;
  for (double v : {0.05, 0.1, 0.5, 5.0, 50.0}) h.observe(v);
  auto s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum, 55.65);
}

TEST(Family, CountsFromManyThreadsAddUp) {
  Family<std::tuple<std::string_view, int>, Counter> family;
  constexpr std::string_view kRoutes[] = {"/a", "/b", "/c", "/d"};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) family.at({kRoutes[i % 4], i % 3}).add();
    });
  for (auto& t : threads) t.join();
  std::uint64_t total = 0;
  for (const auto& [key, counter] : family.entries()) total += counter->value();
  EXPECT_EQ(family.entries().size(), 12u);
  EXPECT_EQ(total, 40000u);
  EXPECT_EQ(&family.at({"/a", 0}), &family.at({"/a", 0}));  // a cell never moves
}

}  // namespace
}  // namespace orderflow
