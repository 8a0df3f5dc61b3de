// A map from string keys that copies in O(1): the per-order maps inside aggregate states
// (the units each order holds of a product, the charges of an account) grow with every
// order, and a state is copied for each command (evolve), each load and each cached read.
//
// A three-level trie on the key's hash (16 x 16 x sorted leaves), every node shared and
// immutable once shared: a copy shares the root; a change copies the path to one leaf
// (two 16-pointer nodes and a leaf of about size/256 entries). A node still owned by
// this map alone is changed in place. Iteration is in (hash, key) order, so two maps with
// the same entries iterate, and encode, the same way.
//
// Thread safety: like a std::map value; copies may be used on different threads at once.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orderflow::domain {

template <class V>
class SharedMap {
 public:
  using Entry = std::pair<std::string, V>;

  SharedMap() = default;
  SharedMap(std::initializer_list<Entry> entries) {
    for (const auto& [k, v] : entries) set(k, v);
  }

  const V* find(std::string_view key) const {
    const Leaf* leaf = leaf_of(hash(key));
    if (!leaf) return nullptr;
    auto it = lower(*leaf, key);
    return it != leaf->end() && it->first == key ? &it->second : nullptr;
  }
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  const V& at(std::string_view key) const {
    if (const V* v = find(key)) return *v;
    throw std::out_of_range("SharedMap::at: no such key");
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Inserts or replaces.
  void set(std::string_view key, V value) {
    Leaf& leaf = writable_leaf(hash(key));
    auto it = lower(leaf, key);
    if (it != leaf.end() && it->first == key) {
      it->second = std::move(value);
      return;
    }
    leaf.emplace(it, std::string(key), std::move(value));
    ++size_;
  }
  // Returns whether the key was there.
  bool erase(std::string_view key) {
    if (!contains(key)) return false;  // no copy of a shared path for nothing
    Leaf& leaf = writable_leaf(hash(key));
    leaf.erase(lower(leaf, key));
    --size_;
    return true;
  }

  template <class F>  // f(const std::string& key, const V& value)
  void for_each(F&& f) const {
    if (!root_) return;
    for (const auto& inner : *root_)
      if (inner)
        for (const auto& leaf : *inner)
          if (leaf)
            for (const auto& [k, v] : *leaf) f(k, v);
  }

  friend bool operator==(const SharedMap& a, const SharedMap& b) {
    if (a.size_ != b.size_) return false;
    bool same = true;
    a.for_each([&](const std::string& k, const V& v) {
      const V* other = b.find(k);
      same = same && other && *other == v;
    });
    return same;
  }

 private:
  static constexpr std::size_t kFanout = 16;
  using Leaf = std::vector<Entry>;  // sorted by key
  using Inner = std::array<std::shared_ptr<const Leaf>, kFanout>;
  using Root = std::array<std::shared_ptr<const Inner>, kFanout>;

  static std::size_t hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  static typename Leaf::const_iterator lower(const Leaf& leaf, std::string_view key) {
    return std::lower_bound(leaf.begin(), leaf.end(), key,
                            [](const Entry& e, std::string_view k) { return e.first < k; });
  }
  static typename Leaf::iterator lower(Leaf& leaf, std::string_view key) {
    return std::lower_bound(leaf.begin(), leaf.end(), key,
                            [](const Entry& e, std::string_view k) { return e.first < k; });
  }

  const Leaf* leaf_of(std::size_t h) const {
    if (!root_) return nullptr;
    const auto& inner = (*root_)[h % kFanout];
    return inner ? (*inner)[(h / kFanout) % kFanout].get() : nullptr;
  }

  // The node, made this map's own: copied if shared (or new if absent). Every node is
  // created non-const (make_shared<T>), so changing one owned alone is well defined.
  // A use count of 1 means no other map can reach the node; the fence orders this
  // map's writes after the reads of a copy that has just released it.
  template <class T>
  static T& own(std::shared_ptr<const T>& node) {
    if (!node) node = std::make_shared<T>();
    else if (node.use_count() > 1) node = std::make_shared<T>(*node);
    else std::atomic_thread_fence(std::memory_order_acquire);
    return const_cast<T&>(*node);
  }
  Leaf& writable_leaf(std::size_t h) {
    Root& root = own(root_);
    Inner& inner = own(root[h % kFanout]);
    return own(inner[(h / kFanout) % kFanout]);
  }

  std::shared_ptr<const Root> root_;
  std::size_t size_ = 0;
};

}  // namespace orderflow::domain
