// Admission control: a bound passed refuses writes (Errc::overloaded naming it), a bound of
// 0 or a gauge without a value is not checked, and the gauges are read at most every
// `refresh`.
#include "app/admission.h"

#include <gtest/gtest.h>

namespace orderflow::app {
namespace {

using namespace std::chrono_literals;

struct Gauges {
  std::optional<std::int64_t> saga = 0, projection = 0, queue = 0;
  int reads = 0;
};

struct Harness {
  Gauges g;
  std::chrono::steady_clock::time_point now{};
  Admission admission;

  explicit Harness(AdmissionLimits limits)
      : admission(limits,
                  {.saga_lag = [this] { return ++g.reads, g.saga; },
                   .projection_lag = [this] { return g.projection; },
                   .append_queue = [this] { return g.queue; }},
                  [this] { return now; }) {}
  // Lets the next admit() read the gauges again.
  void later() { now += 1s; }
};

TEST(Admission, AdmitsUnderEveryBoundAndRefusesPastOneNamingIt) {
  Harness h({.saga_lag = 100, .projection_lag = 1000, .append_queue = 50});
  h.g = {100, 1000, 50};
  EXPECT_TRUE(h.admission.admit()) << "a gauge at its bound is not past it";
  h.g.saga = 101;
  h.later();
  auto refused = h.admission.admit();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::overloaded);
  EXPECT_NE(refused.error().message.find("101 events of the log wait for the saga (the bound is 100)"),
            std::string::npos)
      << refused.error().message;
  EXPECT_EQ(h.admission.refused(AdmissionReason::saga_lag), 1u);
  h.g.saga = 0;
  h.g.projection = 1001;
  h.later();
  EXPECT_FALSE(h.admission.admit());
  EXPECT_EQ(h.admission.refused(AdmissionReason::projection_lag), 1u);
  h.g.projection = 0;
  h.g.queue = 51;
  h.later();
  EXPECT_FALSE(h.admission.admit());
  EXPECT_EQ(h.admission.refused(AdmissionReason::append_queue), 1u);
  h.g.queue = 0;
  h.later();
  EXPECT_TRUE(h.admission.admit()) << "writes are admitted again once the work behind caught up";
}

TEST(Admission, ABoundOfZeroOrAGaugeWithoutAValueIsNotChecked) {
  Harness h({.saga_lag = 0, .projection_lag = 10, .append_queue = 10});
  h.g = {1'000'000, std::nullopt, 5};
  EXPECT_TRUE(h.admission.admit());
  EXPECT_EQ(h.g.reads, 0) << "a gauge whose bound is off was read";
}

TEST(Admission, GaugesAreReadAtMostOncePerRefresh) {
  Harness h({.saga_lag = 10, .projection_lag = 10, .append_queue = 10, .refresh = 50ms});
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(h.admission.admit());
  EXPECT_EQ(h.g.reads, 1);
  h.g.saga = 11;
  EXPECT_TRUE(h.admission.admit()) << "the verdict is as old as the last look";
  h.now += 50ms;
  EXPECT_FALSE(h.admission.admit());
  EXPECT_EQ(h.g.reads, 2);
}

}  // namespace
}  // namespace orderflow::app
