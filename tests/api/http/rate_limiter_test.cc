#include "api/http/rate_limiter.h"

#include <gtest/gtest.h>

#include <string>

namespace orderflow::http {
namespace {

using namespace std::chrono_literals;
using Clock = RateLimiter::Clock;

const Clock::time_point t0 = Clock::time_point() + 1h;

TEST(TokenBucketTest, BurstThenRefillsAtTheRate) {
  const RateLimit limit{.rate = 4, .burst = 3};
  TokenBucket b(limit, t0);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(b.take(limit, t0)) << i;
  auto wait = b.take(limit, t0);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 250ms);
  EXPECT_EQ(b.take(limit, t0 + 125ms), 125ms);  // half a token so far
  EXPECT_FALSE(b.take(limit, t0 + 250ms));       // a whole one
  EXPECT_TRUE(b.take(limit, t0 + 250ms));
  EXPECT_FALSE(b.full(limit, t0 + 999ms));
  EXPECT_TRUE(b.full(limit, t0 + 1s));
}

TEST(TokenBucketTest, NeverHoldsMoreThanTheBurst) {
  const RateLimit limit{.rate = 100, .burst = 2};
  TokenBucket b(limit, t0);
  const auto later = t0 + 1h;
  EXPECT_FALSE(b.take(limit, later));
  EXPECT_FALSE(b.take(limit, later));
  EXPECT_TRUE(b.take(limit, later));
}

TEST(RateLimiterTest, EachKeyHasItsOwnBucketAndRetryAfterIsWholeSeconds) {
  RateLimiter limiter({.limit = {.rate = 0.5, .burst = 2}});
  EXPECT_FALSE(limiter.take("customer:a", t0));
  EXPECT_FALSE(limiter.take("customer:a", t0));
  auto wait = limiter.take("customer:a", t0);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 2);  // one token every 2 s
  EXPECT_FALSE(limiter.take("customer:b", t0));  // another caller is not held back
  EXPECT_EQ(limiter.take("customer:a", t0 + 1500ms), 1);  // 0.5 s left: rounded up
  EXPECT_FALSE(limiter.take("customer:a", t0 + 2s));
}

TEST(RateLimiterTest, IdleKeysExpireAndMemoryIsBounded) {
  RateLimiter limiter({.limit = {.rate = 1, .burst = 1}, .max_keys = 1600});
  for (int i = 0; i < 10'000; ++i) limiter.take("10.0.0." + std::to_string(i), t0);
  EXPECT_EQ(limiter.size(), 1600u);
  // Each of those buckets is full again after 1 s: the next sweep of its shard drops it
  // (400 keys reach all 16 shards).
  for (int i = 0; i < 400; ++i) limiter.take("later-" + std::to_string(i), t0 + 11s);
  EXPECT_LE(limiter.size(), 400u);
}

TEST(RateLimiterTest, KeysThatFindTheTableFullShareOneLimit) {
  RateLimiter limiter({.limit = {.rate = 1, .burst = 1}, .max_keys = 16});
  int allowed = 0;
  // Busy keys fill the table (each within its second), then newcomers arrive.
  for (int i = 0; i < 1000; ++i) allowed += !limiter.take("k" + std::to_string(i), t0);
  EXPECT_LE(limiter.size(), 16u);
  // Each held key let one through, and each shard's overflow bucket one more.
  EXPECT_LE(allowed, 16 + 16);
  EXPECT_GE(allowed, 16);
}

}  // namespace
}  // namespace orderflow::http
