#include "app/idempotency_retention.h"

#include <gtest/gtest.h>

#include <deque>
#include <future>
#include <vector>

namespace orderflow::app {
namespace {

// Records with their creation times; deletes as the stores do (oldest first, at most max).
class Records final : public es::IdempotencyRecords {
 public:
  Result<std::size_t> expire_idempotency(std::int64_t before_ms, std::size_t max) override {
    MutexLock lk(mu_);
    asked.push_back({before_ms, max});
    if (failing) return fail(Errc::unavailable, "the store is down");
    std::size_t n = 0;
    while (n < max && !created.empty() && created.front() < before_ms) {
      created.pop_front();
      ++n;
    }
    if (n > 0) cv_.notify_all();
    return n;
  }
  // Waits up to 5 s until `left` records are left.
  bool wait_until_left(std::size_t left) {
    MutexLock lk(mu_);
    return cv_.wait_for(mu_, std::chrono::seconds(5), [&]() REQUIRES(mu_) { return created.size() == left; });
  }

  Mutex mu_;
  CondVar cv_;
  std::deque<std::int64_t> created GUARDED_BY(mu_);  // ascending
  std::vector<std::pair<std::int64_t, std::size_t>> asked GUARDED_BY(mu_);
  bool failing GUARDED_BY(mu_) = false;
};

constexpr std::int64_t kNow = 100 * 3600 * 1000;  // Unix ms

IdempotencyRetentionOptions options() {
  return {.retention = std::chrono::hours(24),
          .interval = std::chrono::milliseconds(20),
          .chunk = 3,
          .pause = std::chrono::milliseconds(0),
          .now_ms = [] { return kNow; }};
}

TEST(IdempotencyRetention, ASweepDeletesEveryRecordOlderThanTheRetentionInChunks) {
  Records records;
  {
    MutexLock lk(records.mu_);
    const std::int64_t day = 24 * 3600 * 1000;
    for (int i = 0; i < 7; ++i) records.created.push_back(kNow - 2 * day + i);  // expired
    records.created.push_back(kNow - day);                                     // at the bound: kept
    records.created.push_back(kNow - 1);
  }
  IdempotencyRetention retention(records, options());
  auto swept = retention.sweep();
  ASSERT_TRUE(swept) << swept.error().message;
  EXPECT_EQ(*swept, 7u);
  EXPECT_EQ(retention.expired(), 7u);
  MutexLock lk(records.mu_);
  EXPECT_EQ(records.created.size(), 2u);
  // 3 + 3 + 1: a chunk short of full ends the sweep.
  ASSERT_EQ(records.asked.size(), 3u);
  for (const auto& [before, max] : records.asked) {
    EXPECT_EQ(before, kNow - 24 * 3600 * 1000);
    EXPECT_EQ(max, 3u);
  }
}

// The thread sweeps at once and then every interval; a failing store is reported and tried
// again, not given up on.
TEST(IdempotencyRetention, TheThreadSweepsAgainAfterTheStoreFailed) {
  Records records;
  {
    MutexLock lk(records.mu_);
    records.failing = true;
    records.created = {1, 2, 3, 4};
  }
  IdempotencyRetention retention(records, options());
  retention.start();
  for (int i = 0; i < 200; ++i) {
    {
      MutexLock lk(records.mu_);
      if (records.asked.size() >= 2) {
        records.failing = false;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(records.wait_until_left(0)) << "the store came back and the expired records were not deleted";
  retention.stop();
  EXPECT_EQ(retention.expired(), 4u);
}

TEST(IdempotencyRetention, StopEndsAWaitAtOnce) {
  Records records;
  auto slow = options();
  slow.interval = std::chrono::hours(1);
  IdempotencyRetention retention(records, slow);
  retention.start();
  const auto from = std::chrono::steady_clock::now();
  retention.stop();
  retention.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - from, std::chrono::seconds(5));
}

}  // namespace
}  // namespace orderflow::app
