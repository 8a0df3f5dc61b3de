#include "cli/progress.h"

#include <gtest/gtest.h>

namespace orderflow::cli {
namespace {

using std::chrono::duration;

TEST(ProgressLine, SaysDoneOfTotalTheShareTheRateAndWhatIsLeft) {
  EXPECT_EQ(progress_line("rebuild orders", 412000, 1000000, 0, duration<double>(2.0)),
            "rebuild orders: 412000/1000000 events (41%), 206k/s, ETA 3 s");
}

TEST(ProgressLine, CountsTheRateFromWhereItStarted) {
  EXPECT_EQ(progress_line("chain", 1500, 2000, 1000, duration<double>(1.0)),
            "chain: 1500/2000 events (75%), 500/s, ETA 1 s");
}

TEST(ProgressLine, GivesMinutesAndHoursForLongWork) {
  EXPECT_EQ(progress_line("migrate", 1000, 200000, 0, duration<double>(1.0)),
            "migrate: 1000/200000 events (0%), 1.0k/s, ETA 3 min 19 s");
  EXPECT_EQ(progress_line("migrate", 10, 100000, 0, duration<double>(1.0)),
            "migrate: 10/100000 events (0%), 10/s, ETA 2 h 46 min");
}

TEST(ProgressLine, SaysFinishingOnceEveryUnitIsDone) {
  EXPECT_EQ(progress_line("migrate", 300000, 300000, 0, duration<double>(9.0)),
            "migrate: 300000/300000 events (100%), finishing");
}

TEST(ProgressLine, HasNoRateBeforeAnythingIsDoneAndNoEtaWithoutATotal) {
  EXPECT_EQ(progress_line("bench append", 0, 30000, 0, duration<double>(0.0)), "bench append: 0/30000 events (0%)");
  EXPECT_EQ(progress_line("scan", 2500000, 0, 0, duration<double>(1.0)), "scan: 2500000 events, 2.5M/s");
}

}  // namespace
}  // namespace orderflow::cli
