// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header that
// carries a trace across processes. A request's traceparent is accepted when valid (else
// ignored, as the specification asks), and the server's work gets a span of its own in
// that trace, or in a new one; that span's traceparent is kept in the events' metadata,
// and the work the events cause (saga steps, projections) makes spans under it.
//
// Spans go to the process's SpanSink (serve --otlp-endpoint: core/otlp_exporter.h) when
// their trace is sampled (flag bit 0); without a sink nothing is made beyond the ids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace orderflow {

struct TraceParent {
  std::string trace_id;    // 32 lower-case hex digits, not all zero
  std::string parent_id;   // 16 lower-case hex digits, not all zero: the span that made this
  std::uint8_t flags = 0;  // bit 0: sampled

  bool sampled() const { return (flags & 1) != 0; }
};

// Version 00 exactly (55 characters); a later version by its first four fields, as the
// specification asks. nullopt for anything else (version ff, all-zero ids, upper case, ...).
std::optional<TraceParent> parse_traceparent(std::string_view header);
// "00-TRACE_ID-PARENT_ID-FLAGS".
std::string format_traceparent(const TraceParent& t);
// The traceparent an event's metadata (a JSON object) carries, if it carries a valid one.
std::optional<TraceParent> traceparent_in_metadata(std::string_view metadata);

// A new span in the trace of `caller` (its flags too: the caller decided the sampling), or
// in a new trace when there is none, sampled with the ratio given to configure_tracing (1
// by default): a random span id, random ids from a per-thread generator. Thread-safe.
TraceParent child_span(const std::optional<TraceParent>& caller);

// A finished span, as OTLP carries it (opentelemetry/proto/trace/v1/trace.proto).
struct Span {
  enum class Kind { internal = 1, server = 2, client = 3, producer = 4, consumer = 5 };
  using Value = std::variant<std::string, std::int64_t>;

  TraceParent context;      // its trace, its own id (parent_id) and flags
  std::string parent_span_id;  // empty: a root span
  std::string name;
  Kind kind = Kind::internal;
  std::int64_t start_unix_ns = 0, end_unix_ns = 0;
  bool error = false;          // status ERROR (else UNSET)
  std::string status_message;  // with error
  std::vector<std::pair<std::string, Value>> attributes;
};

// Where finished spans go.
class SpanSink {
 public:
  virtual ~SpanSink() = default;
  // Never blocks the caller for long (no I/O). Thread-safe.
  virtual void take(Span span) = 0;
};

// Once at start-up, before other threads trace: new traces are sampled with probability
// `sample_ratio` (0..1); spans go to `sink` (nullptr: nowhere), which must outlive every
// record_span call (configure_tracing(1, nullptr) before destroying it).
void configure_tracing(double sample_ratio, SpanSink* sink);
// Whether spans are recorded at all: callers skip building them otherwise.
bool tracing_enabled();
// Hands `span` to the sink when there is one and its trace is sampled.
void record_span(Span span);

// Nanoseconds since the unix epoch, now.
std::int64_t now_unix_ns();

}  // namespace orderflow
