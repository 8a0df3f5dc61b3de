// Latency samples: exact percentiles from sorted samples (benchmarks), and a bounded
// window of the most recent ones (figures a server keeps while it runs).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <vector>

namespace orderflow {

// The q-quantile (0..1) of ascending `sorted` (not empty): the nearest rank.
inline std::uint32_t quantile_of_sorted(const std::vector<std::uint32_t>& sorted, double q) {
  const auto i = static_cast<std::size_t>(std::lround(q * static_cast<double>(sorted.size() - 1)));
  return sorted[std::min(i, sorted.size() - 1)];
}

class LatencySamples {
 public:
  void reserve(std::size_t n) { us_.reserve(n); }
  void record(std::chrono::nanoseconds d) {
    us_.push_back(static_cast<std::uint32_t>(d.count() / 1000));
    sorted_ = false;
  }
  void merge(const LatencySamples& other) {
    us_.insert(us_.end(), other.us_.begin(), other.us_.end());
    sorted_ = false;
  }
  std::size_t count() const { return us_.size(); }

  // The q-quantile (0..1) in microseconds; 0 with no samples. Sorts on first use.
  std::uint32_t percentile_us(double q) {
    if (us_.empty()) return 0;
    if (!sorted_) std::sort(us_.begin(), us_.end());
    sorted_ = true;
    return quantile_of_sorted(us_, q);
  }

 private:
  std::vector<std::uint32_t> us_;
  bool sorted_ = false;
};

// The last `capacity` latencies: older ones drop out, so memory stays bounded and the
// percentiles describe recent behaviour. Not thread-safe.
class RecentLatencies {
 public:
  explicit RecentLatencies(std::size_t capacity) : capacity_(capacity) { us_.reserve(capacity); }
  void record(std::chrono::microseconds d) {
    const auto us = static_cast<std::uint32_t>(std::clamp<std::int64_t>(d.count(), 0, UINT32_MAX));
    if (us_.size() < capacity_)
      us_.push_back(us);
    else
      us_[next_] = us;
    next_ = (next_ + 1) % capacity_;
  }
  std::size_t count() const { return us_.size(); }

  // The q-quantiles (each 0..1) of the window in microseconds, in the order asked; zeros
  // with no samples.
  template <std::size_t N>
  std::array<std::uint32_t, N> percentiles_us(const std::array<double, N>& qs) const {
    std::array<std::uint32_t, N> out{};
    if (us_.empty()) return out;
    auto sorted = us_;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < N; ++i) out[i] = quantile_of_sorted(sorted, qs[i]);
    return out;
  }

 private:
  std::size_t capacity_;
  std::vector<std::uint32_t> us_;
  std::size_t next_ = 0;  // the slot the next sample overwrites once full
};

}  // namespace orderflow
