#include "domain/shared_map.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <map>
#include <random>
#include <string>

namespace orderflow::domain {
namespace {

// Keys of both kinds: UUIDs in lowercase canonical form (kept as 16 bytes) and others.
std::string key_of(unsigned n) {
  char uuid[37];
  std::snprintf(uuid, sizeof uuid, "%08x-0000-4000-8000-%012x", n * 2654435761u, n);
  switch (n % 3) {
    case 0: return uuid;
    case 1: {
      std::string upper = uuid;  // not canonical: kept as a string, a key of its own
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return upper;
    }
    default: return "k" + std::to_string(n);
  }
}

std::map<std::string, int> contents(const SharedMap<int>& m) {
  std::map<std::string, int> out;
  m.for_each([&](const std::string& k, int v) { EXPECT_TRUE(out.emplace(k, v).second) << k << " twice"; });
  return out;
}

TEST(SharedMap, FindsWhatWasSetAndNothingElse) {
  SharedMap<int> m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.find("a"), nullptr);
  m.set("a", 1);
  m.set("b", 2);
  m.set("a", 3);  // replaces
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.at("a"), 3);
  EXPECT_EQ(*m.find("b"), 2);
  EXPECT_FALSE(m.contains("c"));
  EXPECT_THROW((void)m.at("c"), std::out_of_range);
  EXPECT_TRUE(m.erase("a"));
  EXPECT_FALSE(m.erase("a"));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(contents(m), (std::map<std::string, int>{{"b", 2}}));
}

TEST(SharedMap, AUuidKeyComesBackAsItWasSetAndDiffersFromItsUpperCase) {
  const std::string lower = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff";
  std::string upper = lower;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  SharedMap<int> m;
  m.set(lower, 1);
  m.set(upper, 2);
  EXPECT_EQ(contents(m), (std::map<std::string, int>{{lower, 1}, {upper, 2}}));
  EXPECT_FALSE(m.contains("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fe"));
  EXPECT_FALSE(m.contains("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f"));
  EXPECT_TRUE(m.erase(lower));
  EXPECT_EQ(contents(m), (std::map<std::string, int>{{upper, 2}}));
}

TEST(SharedMap, ACopyIsUnaffectedByChangesToEitherSide) {
  SharedMap<int> original;
  for (int i = 0; i < 2000; ++i) original.set("order-" + std::to_string(i), i);
  SharedMap<int> copy = original;
  copy.set("order-7", -7);
  copy.erase("order-8");
  copy.set("new", 1);
  original.set("order-9", -9);
  EXPECT_EQ(original.at("order-7"), 7);
  EXPECT_TRUE(original.contains("order-8"));
  EXPECT_FALSE(original.contains("new"));
  EXPECT_EQ(copy.at("order-9"), 9);
  EXPECT_EQ(original.size(), 2000u);
  EXPECT_EQ(copy.size(), 2000u);
  EXPECT_FALSE(original == copy);
}

// A random history of sets, erases and copies agrees with std::map at every step.
TEST(SharedMap, BehavesLikeStdMapUnderRandomOperations) {
  std::mt19937 rng(42);
  std::vector<std::pair<SharedMap<int>, std::map<std::string, int>>> versions(1);
  for (int step = 0; step < 20000; ++step) {
    auto& [m, expected] = versions[rng() % versions.size()];
    auto key = key_of(static_cast<unsigned>(rng() % 500));
    switch (rng() % 4) {
      case 0:
      case 1: {
        int v = static_cast<int>(rng() % 1000);
        m.set(key, v);
        expected[key] = v;
        break;
      }
      case 2:
        EXPECT_EQ(m.erase(key), expected.erase(key) == 1);
        break;
      case 3:
        if (versions.size() < 16) versions.emplace_back(m, expected);
        break;
    }
  }
  for (const auto& [m, expected] : versions) {
    EXPECT_EQ(contents(m), expected);
    EXPECT_EQ(m.size(), expected.size());
  }
}

TEST(SharedMap, EqualContentsIterateInTheSameOrderWhateverTheHistory) {
  SharedMap<int> a, b;
  for (int i = 0; i < 300; ++i) a.set(key_of(static_cast<unsigned>(i)), i);
  for (int i = 299; i >= 0; --i) b.set(key_of(static_cast<unsigned>(i)), i);
  b.set("extra", 0);
  b.erase("extra");
  EXPECT_TRUE(a == b);
  std::vector<std::string> order_a, order_b;
  a.for_each([&](const std::string& k, int) { order_a.push_back(k); });
  b.for_each([&](const std::string& k, int) { order_b.push_back(k); });
  EXPECT_EQ(order_a, order_b);
}

}  // namespace
}  // namespace orderflow::domain
