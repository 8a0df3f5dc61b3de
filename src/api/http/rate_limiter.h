// Rate limits: a token bucket per key (a caller), so each key may send `rate` requests a
// second on average and `burst` at once (serve --rate-limit, --rate-burst).
//
//   http::RateLimiter limiter({.rate = 100, .burst = 200});
//   if (auto wait = limiter.take("customer:c-17", std::chrono::steady_clock::now()))
//     …;  // refused: 429 with Retry-After: *wait (whole seconds)
//
// Memory is bounded: at most `max_keys` buckets are held. A bucket idle long enough to be full
// again is the same as a new one and is dropped at the next sweep; a key that finds the table
// full of busy buckets shares one overflow bucket with every other such key, so it is still
// limited (together with them) and holds nothing of its own.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/mutex.h"

namespace orderflow::http {

struct RateLimit {
  double rate = 1;   // tokens added per second; > 0
  double burst = 1;  // tokens a bucket holds at most; >= 1
};

// One key's bucket. Not thread-safe: RateLimiter locks around it.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // Full at `now`.
  TokenBucket(const RateLimit& limit, Clock::time_point now) : tokens_(limit.burst), at_(now) {}

  // Takes a token if there is one (nullopt); otherwise takes nothing and answers how long
  // until there is one.
  std::optional<Clock::duration> take(const RateLimit& limit, Clock::time_point now);

  // Has it been idle long enough to be full again (the same as a new bucket)?
  bool full(const RateLimit& limit, Clock::time_point now) const;

 private:
  double tokens_;
  Clock::time_point at_;  // when tokens_ was counted
};

class RateLimiter {
 public:
  using Clock = TokenBucket::Clock;

  struct Options {
    RateLimit limit;
    std::size_t max_keys = 100'000;
  };

  explicit RateLimiter(Options options);

  // Counts one request of `key` at `now`: nullopt lets it through; otherwise the whole
  // seconds (at least 1) until `key` has a token again, for Retry-After.
  // Thread-safe; `now` should not go backwards for a key (a steady clock).
  std::optional<std::int64_t> take(std::string_view key, Clock::time_point now);

  // Buckets held now (the overflow bucket aside).
  std::size_t size() const;

  const RateLimit& limit() const { return limit_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    mutable Mutex mu;
    std::unordered_map<std::string, TokenBucket, Hash, std::equal_to<>> buckets GUARDED_BY(mu);
    std::optional<TokenBucket> overflow GUARDED_BY(mu);
    Clock::time_point swept GUARDED_BY(mu){};
  };
  static constexpr std::size_t kShards = 16;  // one lock each: io threads rarely meet

  void sweep(Shard& shard, Clock::time_point now) const REQUIRES(shard.mu);

  const RateLimit limit_;
  const std::size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace orderflow::http
