// A map from string keys that copies in O(1): a per-order map inside an aggregate state
// (the units each order holds of a product) grows with the orders it holds, and a state
// is copied for each command (evolve), each load and each cached read.
//
// A three-level trie on the key's hash (16 x 16 x sorted leaves), every node shared and
// immutable once shared: a copy shares the root; a change copies the path to one leaf
// (two 16-pointer nodes and a leaf of about size/256 entries). A node still owned by
// this map alone is changed in place.
//
// Keys are order ids: a key that is a UUID in lowercase canonical form (every order id
// the server makes) is kept as its 16 bytes, so an entry costs 16 + sizeof(V) bytes and
// a leaf copies with memcpy (a heap string per entry made it ~100 bytes and a malloc per
// entry copied). Other keys (ids a client chose in upper case; tests) live in a second,
// copy-on-write sorted map. Iteration visits the UUID keys in (hash, key) order, then the
// others in key order: two maps with the same entries iterate, and encode, the same way.
//
// Thread safety: like a std::map value; copies may be used on different threads at once.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orderflow::domain {

// The 16 bytes of a UUID written as 8-4-4-4-12 lowercase hex digits.
struct UuidKey {
  std::array<unsigned char, 16> bytes{};
  auto operator<=>(const UuidKey&) const = default;

  // Only the lowercase canonical form, so that to_string gives back the same key.
  static std::optional<UuidKey> parse(std::string_view s) {
    if (s.size() != 36) return std::nullopt;
    UuidKey key;
    std::size_t n = 0;
    for (std::size_t i = 0; i < 36; ++i) {
      const char c = s[i];
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        if (c != '-') return std::nullopt;
        continue;
      }
      int nibble = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (nibble < 0) return std::nullopt;
      key.bytes[n / 2] = static_cast<unsigned char>(key.bytes[n / 2] << 4 | nibble);
      ++n;
    }
    return key;
  }
  void write(std::string& out) const {
    static constexpr char kHex[] = "0123456789abcdef";
    out.resize(36);
    std::size_t at = 0;
    for (std::size_t i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) out[at++] = '-';
      out[at++] = kHex[bytes[i] >> 4];
      out[at++] = kHex[bytes[i] & 15];
    }
  }
  std::size_t hash() const {
    return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
};

template <class V>
class SharedMap {
 public:
  using Entry = std::pair<std::string, V>;

  SharedMap() = default;
  SharedMap(std::initializer_list<Entry> entries) {
    for (const auto& [k, v] : entries) set(k, v);
  }

  const V* find(std::string_view key) const {
    if (auto uuid = UuidKey::parse(key)) {
      const Leaf* leaf = leaf_of(uuid->hash());
      if (!leaf) return nullptr;
      auto it = lower(*leaf, *uuid);
      return it != leaf->end() && it->first == *uuid ? &it->second : nullptr;
    }
    if (!others_) return nullptr;
    auto it = others_->find(key);
    return it != others_->end() ? &it->second : nullptr;
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
    if (auto uuid = UuidKey::parse(key)) {
      Leaf& leaf = writable_leaf(uuid->hash());
      auto it = lower(leaf, *uuid);
      if (it != leaf.end() && it->first == *uuid) {
        it->second = std::move(value);
        return;
      }
      leaf.emplace(it, *uuid, std::move(value));
      ++size_;
      return;
    }
    auto [it, inserted] = own(others_).insert_or_assign(std::string(key), std::move(value));
    if (inserted) ++size_;
  }
  // Returns whether the key was there.
  bool erase(std::string_view key) {
    if (!contains(key)) return false;  // no copy of a shared path for nothing
    if (auto uuid = UuidKey::parse(key)) {
      Leaf& leaf = writable_leaf(uuid->hash());
      leaf.erase(lower(leaf, *uuid));
    } else {
      auto& others = own(others_);
      others.erase(others.find(key));
    }
    --size_;
    return true;
  }

  template <class F>  // f(const std::string& key, const V& value)
  void for_each(F&& f) const {
    if (root_) {
      std::string key;
      for (const auto& inner : *root_)
        if (inner)
          for (const auto& leaf : *inner)
            if (leaf)
              for (const auto& [k, v] : *leaf) {
                k.write(key);
                f(std::as_const(key), v);
              }
    }
    if (others_)
      for (const auto& [k, v] : *others_) f(k, v);
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
  using Leaf = std::vector<std::pair<UuidKey, V>>;  // sorted by key
  using Inner = std::array<std::shared_ptr<const Leaf>, kFanout>;
  using Root = std::array<std::shared_ptr<const Inner>, kFanout>;
  using Others = std::map<std::string, V, std::less<>>;

  template <class L>
  static auto lower(L& leaf, const UuidKey& key) {
    return std::lower_bound(leaf.begin(), leaf.end(), key, [](const auto& e, const UuidKey& k) { return e.first < k; });
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
  std::shared_ptr<const Others> others_;
  std::size_t size_ = 0;
};

}  // namespace orderflow::domain
