#include "core/time.h"

#include <gtest/gtest.h>

namespace orderflow {
namespace {

TEST(Time, FormatsRfc3339WithMilliseconds) {
  EXPECT_EQ(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339_ms(1795550000123), "2026-11-24T19:53:20.123Z");
  EXPECT_EQ(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339_ms(253402300799999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339_ms(253402300800000), "10000-01-01T00:00:00.000Z");
}

TEST(Time, ParsesWhatItFormatsAndOffsets) {
  EXPECT_EQ(parse_rfc3339_ms("2026-11-24T19:53:20.123Z"), 1795550000123);
  EXPECT_EQ(parse_rfc3339_ms("2026-11-24T19:53:20Z"), 1795550000000);
  EXPECT_EQ(parse_rfc3339_ms("2026-11-24T20:53:20.1+01:00"), 1795550000100);
  EXPECT_FALSE(parse_rfc3339_ms("2026-11-23"));
  EXPECT_FALSE(parse_rfc3339_ms("2026-02-30T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339_ms("2026-11-24T19:53:20"));
  EXPECT_FALSE(parse_rfc3339_ms("2026-11-24T19:53:20Zjunk"));
}

}  // namespace
}  // namespace orderflow
