#include "core/trace.h"

#include <gtest/gtest.h>

namespace orderflow {
namespace {

constexpr const char* kExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceParent, ParsesAndFormatsTheSpecificationsExample) {
  auto t = parse_traceparent(kExample);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t->parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(t->flags, 1);
  EXPECT_EQ(format_traceparent(*t), kExample);
}

TEST(TraceParent, RefusesWhatTheSpecificationRefuses) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // version 00 has nothing more
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // all-zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // all-zero parent id
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // upper case
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
       })
    EXPECT_FALSE(parse_traceparent(bad)) << bad;
}

TEST(TraceParent, ALaterVersionIsReadByItsFirstFields) {
  auto t = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_traceparent(*t), kExample);
}

TEST(TraceParent, AChildSpanKeepsTheTraceAndFlagsWithANewSpanId) {
  auto caller = parse_traceparent(kExample);
  auto child = child_span(caller);
  EXPECT_EQ(child.trace_id, caller->trace_id);
  EXPECT_EQ(child.flags, caller->flags);
  EXPECT_NE(child.parent_id, caller->parent_id);
  EXPECT_TRUE(parse_traceparent(format_traceparent(child)));
}

TEST(TraceParent, WithoutACallerANewSampledTraceBegins) {
  auto a = child_span(std::nullopt), b = child_span(std::nullopt);
  EXPECT_NE(a.trace_id, b.trace_id);
  EXPECT_EQ(a.flags, 1);
  EXPECT_TRUE(parse_traceparent(format_traceparent(a))) << format_traceparent(a);
}

TEST(TraceParent, NewTracesAreSampledWithTheRatioAndACallerKeepsItsFlag) {
  configure_tracing(0, nullptr);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(child_span(std::nullopt).sampled());
  EXPECT_TRUE(child_span(parse_traceparent(kExample)).sampled());
  configure_tracing(0.5, nullptr);
  int sampled = 0;
  for (int i = 0; i < 1000; ++i) sampled += child_span(std::nullopt).sampled();
  EXPECT_GT(sampled, 400);
  EXPECT_LT(sampled, 600);
  configure_tracing(1, nullptr);
}

TEST(TraceParent, FoundInAnEventsMetadata) {
  auto t = traceparent_in_metadata(R"({"correlation_id":"o-1","traceparent":")" + std::string(kExample) + R"("})");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_traceparent(*t), kExample);
  EXPECT_FALSE(traceparent_in_metadata(R"({"correlation_id":"o-1"})"));
  EXPECT_FALSE(traceparent_in_metadata(R"({"traceparent":"garbage"})"));
  EXPECT_FALSE(traceparent_in_metadata("traceparent: not JSON"));
}

struct Collected : SpanSink {
  std::vector<Span> spans;
  void take(Span s) override { spans.push_back(std::move(s)); }
};

TEST(RecordSpan, OnlySampledSpansReachTheSink) {
  Collected sink;
  EXPECT_FALSE(tracing_enabled());
  record_span(Span{.context = *parse_traceparent(kExample)});  // no sink: nowhere
  configure_tracing(1, &sink);
  EXPECT_TRUE(tracing_enabled());
  record_span(Span{.context = *parse_traceparent(kExample), .name = "sampled"});
  record_span(Span{.context = *parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")});
  configure_tracing(1, nullptr);
  ASSERT_EQ(sink.spans.size(), 1u);
  EXPECT_EQ(sink.spans[0].name, "sampled");
}

}  // namespace
}  // namespace orderflow
