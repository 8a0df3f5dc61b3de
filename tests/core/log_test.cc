#include "core/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <regex>
#include <sstream>

namespace orderflow::log {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void use(Options o) { configure(o, std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)); }
  void TearDown() override { configure({}); }
  std::string text() const { return out_.str(); }

  std::ostringstream out_;
};

TEST_F(LogTest, JsonLineHasTimeLevelComponentMessageAndTypedFields) {
  use({.format = Format::json});
  info("projections", "caught up", {{"stream", "order-\"1\""}, {"position", std::uint64_t{42}}, {"ok", true}});
  EXPECT_TRUE(std::regex_match(
      text(), std::regex(R"(\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"info",)"
                         R"("component":"projections","message":"caught up",)"
                         R"("stream":"order-\\"1\\"","position":42,"ok":true\}\n)")))
      << text();
}

TEST_F(LogTest, JsonEscapesControlCharacters) {
  use({.format = Format::json});
  error("http", "bad\nline\x01", {});
  EXPECT_NE(text().find(R"("message":"bad\nline\u0001"})"), std::string::npos) << text();
}

TEST_F(LogTest, TextLineQuotesValuesWithSpaces) {
  use({.format = Format::text});
  warn("saga", "lease lost", {{"holder", "other node"}, {"order_id", "o-1"}, {"lag_seconds", 1.5}});
  EXPECT_TRUE(std::regex_match(text(), std::regex(R"(\S+Z warning saga: lease lost holder="other node" )"
                                                  R"(order_id=o-1 lag_seconds=1.5\n)")))
      << text();
}

TEST_F(LogTest, LinesBelowTheLevelAreDropped) {
  use({.level = Level::warn});
  debug("x", "d");
  info("x", "i");
  warn("x", "w");
  EXPECT_FALSE(enabled(Level::info));
  EXPECT_EQ(text().find(" x: i"), std::string::npos);
  EXPECT_NE(text().find(" x: w"), std::string::npos);
  use({.level = Level::off});
  error("x", "e");
  EXPECT_EQ(text().find(" x: e"), std::string::npos);
}

TEST(LogParse, LevelsAndFormats) {
  EXPECT_EQ(parse_level("debug"), Level::debug);
  EXPECT_EQ(parse_level("off"), Level::off);
  EXPECT_EQ(parse_level("verbose"), std::nullopt);
  EXPECT_EQ(parse_format("json"), Format::json);
  EXPECT_EQ(parse_format("xml"), std::nullopt);
}

}  // namespace
}  // namespace orderflow::log
