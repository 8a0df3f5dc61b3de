// Latency samples for benchmarks: exact percentiles from sorted samples.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace orderflow {

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
    auto i = static_cast<std::size_t>(q * static_cast<double>(us_.size() - 1) + 0.5);
    return us_[std::min(i, us_.size() - 1)];
  }

 private:
  std::vector<std::uint32_t> us_;
  bool sorted_ = false;
};

}  // namespace orderflow
