#include "core/evict.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <unordered_map>

namespace orderflow {
namespace {

struct Value {
  std::uint64_t used;
  bool pinned = false;
};

std::map<std::string, Value> sorted(const std::unordered_map<std::string, Value>& m) { return {m.begin(), m.end()}; }

TEST(EvictLeastRecent, DropsTheLeastRecentlyUsedEvictableEntriesDownToWhatItKeeps) {
  std::unordered_map<std::string, Value> m{
      {"a", {5}}, {"b", {1, true}}, {"c", {2}}, {"d", {7}}, {"e", {3}}, {"f", {6}}};
  evict_least_recent(m, 3, [](const Value& v) { return !v.pinned; }, [](const Value& v) { return v.used; });
  std::string left;
  for (const auto& [k, v] : sorted(m)) left += k;
  EXPECT_EQ(left, "bdf") << "b is pinned; of the rest the two used last";
}

TEST(EvictLeastRecent, LeavesAMapWithinItsBoundAndStopsWhenNothingIsEvictable) {
  std::unordered_map<std::string, Value> m{{"a", {1}}, {"b", {2}}};
  evict_least_recent(m, 2, [](const Value&) { return true; }, [](const Value& v) { return v.used; });
  EXPECT_EQ(m.size(), 2u);
  m.emplace("c", Value{3, true});
  m.at("a").pinned = m.at("b").pinned = true;
  evict_least_recent(m, 1, [](const Value& v) { return !v.pinned; }, [](const Value& v) { return v.used; });
  EXPECT_EQ(m.size(), 3u);
}

}  // namespace
}  // namespace orderflow
