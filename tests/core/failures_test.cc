#include "core/failures.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace orderflow {
namespace {

std::vector<std::string>& lines() {
  static std::vector<std::string> l;
  return l;
}

class FailuresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lines().clear();
    set_failure_sink([](std::string_view line) { lines().emplace_back(line); });
  }
  void TearDown() override { set_failure_sink(nullptr); }

  static std::uint64_t count(std::string_view component, std::string_view what) {
    for (const auto& f : failure_counts())
      if (f.component == component && f.what == what) return f.count;
    return 0;
  }
};

TEST_F(FailuresTest, FirstFailurePrintsOneLineRepeatsAreCountedNotPrinted) {
  report_failure("snapshots", "save", "product-mug: disk I/O error", "the stream loads from its events");
  for (int i = 0; i < 100; ++i) report_failure("snapshots", "save", "product-mug: disk I/O error", "");
  ASSERT_EQ(lines().size(), 1u);
  EXPECT_EQ(lines()[0],
            "orderflow: snapshots: save failed: product-mug: disk I/O error; the stream loads from its events");
  EXPECT_EQ(count("snapshots", "save"), 101u);
}

TEST_F(FailuresTest, RecoveryPrintsOnceAndSaysHowManyWereSuppressed) {
  report_failure("wal", "checkpoint", "busy", "retried in 1 s");
  report_failure("wal", "checkpoint", "busy", "retried in 1 s");
  recovered("wal", "checkpoint");
  recovered("wal", "checkpoint");  // nothing failed since: silent
  ASSERT_EQ(lines().size(), 2u);
  EXPECT_EQ(lines()[1], "orderflow: wal: checkpoint works again (1 failures since the last report)");
  // After a recovery the next failure is printed again at once.
  report_failure("wal", "checkpoint", "busy", "");
  EXPECT_EQ(lines().size(), 3u);
}

TEST_F(FailuresTest, RecoveredWithoutFailureIsSilent) {
  recovered("never", "failed");
  EXPECT_TRUE(lines().empty());
}

}  // namespace
}  // namespace orderflow
