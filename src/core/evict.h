// Bounded in-memory maps that drop their least recently used entries when full.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <vector>

namespace orderflow {

// Erases from `map` the least recently used of the entries `evictable(value)` allows,
// until it holds at most `keep` entries or none evictable is left. `used(value)` is the
// entry's last use on a counter the map's owner raises at each use, so values are unique.
// O(n): meant to run once the map grows past a limit, keeping half of it, so each
// eviction pays for many inserts. Dropping everything, or arbitrary entries, instead (what
// the callers did) empties the cache of the entries about to be used again: an order's
// state between its placement and its saga's confirmation, read back from the store.
template <class Map, class Evictable, class Used>
void evict_least_recent(Map& map, std::size_t keep, Evictable evictable, Used used) {
  if (map.size() <= keep) return;
  std::vector<std::uint64_t> uses;
  uses.reserve(map.size());
  for (const auto& [key, value] : map)
    if (evictable(value)) uses.push_back(used(value));
  const std::size_t drop = std::min(uses.size(), map.size() - keep);
  if (drop == 0) return;
  std::nth_element(uses.begin(), uses.begin() + static_cast<std::ptrdiff_t>(drop - 1), uses.end());
  const std::uint64_t last = uses[drop - 1];
  for (auto it = map.begin(); it != map.end();)
    it = evictable(it->second) && used(it->second) <= last ? map.erase(it) : std::next(it);
}

}  // namespace orderflow
