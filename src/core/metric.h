// Counters and histograms for /metrics that the hot path updates with relaxed atomics:
// no lock per request, per append or per command.
//
//   inline constexpr std::array<double, 3> kBounds{0.001, 0.01, 0.1};
//   Histogram<kBounds> h;
//   h.observe(0.004);
//   Family<std::string_view, Counter> by_route;   // a counter per label value
//   by_route.at("/orders").add();                  // lock-free once the label value was seen
//
// Thread safety: every member function may be called from any thread at once.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/mutex.h"

namespace orderflow {

class Counter {
 public:
  void add(std::uint64_t n = 1) { n_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return n_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> n_{0};
};

// What a histogram holds at one moment, cumulative per bucket as Prometheus shows it.
struct HistogramSnapshot {
  std::span<const double> bounds;       // upper bounds; +Inf is implied
  std::vector<std::uint64_t> cumulative;  // per bound
  std::uint64_t count = 0;               // every observation (the +Inf bucket)
  double sum = 0;
};

// `Bounds`: the buckets' upper bounds, ascending (a static constexpr std::array<double, N>).
template <const auto& Bounds>
class Histogram {
 public:
  void observe(double value) {
    std::size_t i = 0;
    while (i < Bounds.size() && value > Bounds[i]) ++i;
    if (i < Bounds.size()) buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }

  // Read without a lock: a concurrent observe() may be in the count and not yet in its
  // bucket (or the reverse) for a moment, which Prometheus tolerates.
  HistogramSnapshot snapshot() const {
    HistogramSnapshot s{Bounds, std::vector<std::uint64_t>(Bounds.size()), 0, 0};
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < Bounds.size(); ++i) {
      running += buckets_[i].load(std::memory_order_relaxed);
      s.cumulative[i] = running;
    }
    s.count = std::max(running, count_.load(std::memory_order_relaxed));
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::array<std::atomic<std::uint64_t>, Bounds.size()> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Hashes a label value, or a tuple of them (several labels).
struct LabelHash {
  template <class T>
  std::size_t operator()(const T& v) const {
    return std::hash<T>{}(v);
  }
  template <class... T>
  std::size_t operator()(const std::tuple<T...>& t) const {
    return std::apply([](const auto&... v) {
      std::size_t h = 0;
      ((h = h * 1000003 ^ LabelHash{}(v)), ...);
      return h;
    }, t);
  }
};

// A metric per label value (a key: a string_view to storage that outlives the family, or
// a tuple of such). Cells are created on first use under a lock and
// never move; lookups read an immutable index without one. The index is copied when a
// key is added, so keys must come from a small, fixed set (route patterns, type names).
template <class Key, class Cell>
class Family {
 public:
  Family() : index_(new Index) {}
  ~Family() {
    for (auto* i : retired_) delete i;
    delete index_.load();
  }
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  Cell& at(const Key& key) {
    const Index* index = index_.load(std::memory_order_acquire);
    if (auto it = index->find(key); it != index->end()) return *it->second;
    MutexLock lk(mu_);
    index = index_.load(std::memory_order_relaxed);
    if (auto it = index->find(key); it != index->end()) return *it->second;
    Cell& cell = cells_.emplace_back();
    auto* next = new Index(*index);
    next->emplace(key, &cell);
    retired_.push_back(index);  // a reader may still hold it
    index_.store(next, std::memory_order_release);
    return cell;
  }

  // Every (key, cell) seen so far.
  std::vector<std::pair<Key, const Cell*>> entries() const {
    const Index* index = index_.load(std::memory_order_acquire);
    std::vector<std::pair<Key, const Cell*>> out;
    out.reserve(index->size());
    for (const auto& [key, cell] : *index) out.emplace_back(key, cell);
    return out;
  }

 private:
  using Index = std::unordered_map<Key, Cell*, LabelHash>;
  std::atomic<const Index*> index_;
  Mutex mu_;
  std::deque<Cell> cells_ GUARDED_BY(mu_);
  std::vector<const Index*> retired_ GUARDED_BY(mu_);
};

// The Prometheus text format (0.0.4), for whoever renders a family: one histogram series,
// `labels` being `name="value",…` (may be empty).
void append_histogram(std::string& out, std::string_view metric, std::string_view labels, const HistogramSnapshot& h);

// A Family's entries sorted by key, so that a page reads the same from scrape to scrape.
template <class F>
auto sorted_entries(const F& family) {
  auto entries = family.entries();
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return entries;
}

}  // namespace orderflow
