#include "api/http/rate_limiter.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace orderflow::http {

namespace {

// How often a shard drops its full buckets: when it has room, now and then, to give memory
// back after a crowd has gone; when it is full, as often as a newcomer needs the room.
constexpr auto kSweepIdle = std::chrono::seconds(10);
constexpr auto kSweepFull = std::chrono::seconds(1);

double seconds(TokenBucket::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

std::optional<TokenBucket::Clock::duration> TokenBucket::take(const RateLimit& limit, Clock::time_point now) {
  if (now > at_) {
    tokens_ = std::min(limit.burst, tokens_ + seconds(now - at_) * limit.rate);
    at_ = now;
  }
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return std::nullopt;
  }
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>((1 - tokens_) / limit.rate));
}

bool TokenBucket::full(const RateLimit& limit, Clock::time_point now) const {
  return tokens_ + seconds(now - at_) * limit.rate >= limit.burst;
}

RateLimiter::RateLimiter(Options options)
    : limit_(options.limit), max_per_shard_(std::max<std::size_t>(1, options.max_keys / kShards)) {
  OF_CHECK(limit_.rate > 0 && limit_.burst >= 1, "a rate limit needs rate > 0 and burst >= 1");
}

std::optional<std::int64_t> RateLimiter::take(std::string_view key, Clock::time_point now) {
  const std::size_t h = Hash{}(key);
  Shard& shard = shards_[h % kShards];
  std::optional<Clock::duration> wait;
  {
    MutexLock lock(shard.mu);
    const bool room = shard.buckets.size() < max_per_shard_;
    if (now - shard.swept >= (room ? kSweepIdle : kSweepFull)) sweep(shard, now);
    auto it = shard.buckets.find(key);
    if (it == shard.buckets.end() && shard.buckets.size() < max_per_shard_)
      it = shard.buckets.emplace(std::string(key), TokenBucket(limit_, now)).first;
    if (it != shard.buckets.end()) {
      wait = it->second.take(limit_, now);
    } else {
      if (!shard.overflow) shard.overflow.emplace(limit_, now);
      wait = shard.overflow->take(limit_, now);
    }
  }
  if (!wait) return std::nullopt;
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(seconds(*wait))));
}

void RateLimiter::sweep(Shard& shard, Clock::time_point now) const {
  std::erase_if(shard.buckets, [&](const auto& entry) { return entry.second.full(limit_, now); });
  shard.swept = now;
}

std::size_t RateLimiter::size() const {
  std::size_t n = 0;
  for (const auto& s : shards_) {
    MutexLock lock(s.mu);
    n += s.buckets.size();
  }
  return n;
}

}  // namespace orderflow::http
