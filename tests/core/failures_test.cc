#include "core/failures.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <string>
#include <vector>

#include "core/log.h"

namespace orderflow {
namespace {

class FailuresTest : public ::testing::Test {
 protected:
  void SetUp() override { log::configure({}, std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)); }
  void TearDown() override { log::configure({}); }

  // The lines logged so far, without their time.
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(out_.str());
    for (std::string l; std::getline(in, l);) out.push_back(l.substr(l.find(' ') + 1));
    return out;
  }

  static std::uint64_t count(std::string_view component, std::string_view what) {
    for (const auto& f : failure_counts())
      if (f.component == component && f.what == what) return f.count;
    return 0;
  }

  std::ostringstream out_;
};

TEST_F(FailuresTest, FirstFailureLogsOneLineRepeatsAreCountedNotLogged) {
  report_failure("snapshots", "save", "product-mug: disk I/O error", "the stream loads from its events");
  for (int i = 0; i < 100; ++i) report_failure("snapshots", "save", "product-mug: disk I/O error", "");
  ASSERT_EQ(lines().size(), 1u);
  EXPECT_EQ(lines()[0],
            "error snapshots: save failed: product-mug: disk I/O error; the stream loads from its events failure=save "
            "count=1 suppressed=0");
  EXPECT_EQ(count("snapshots", "save"), 101u);
}

TEST_F(FailuresTest, RecoveryLogsOnceAndSaysHowManyWereSuppressed) {
  report_failure("wal", "checkpoint", "busy", "retried in 1 s");
  report_failure("wal", "checkpoint", "busy", "retried in 1 s");
  recovered("wal", "checkpoint");
  recovered("wal", "checkpoint");  // nothing failed since: silent
  ASSERT_EQ(lines().size(), 2u);
  EXPECT_EQ(lines()[1], "info wal: checkpoint works again failure=checkpoint count=2 suppressed=1");
  // After a recovery the next failure is logged again at once.
  report_failure("wal", "checkpoint", "busy", "");
  EXPECT_EQ(lines().size(), 3u);
}

TEST_F(FailuresTest, RecoveredWithoutFailureIsSilent) {
  recovered("never", "failed");
  EXPECT_TRUE(lines().empty());
}

}  // namespace
}  // namespace orderflow
