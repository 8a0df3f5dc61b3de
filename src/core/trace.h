// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header that
// carries a trace across processes. A request's traceparent is accepted when valid (else
// ignored, as the specification asks), and the server's work gets a span of its own in
// that trace, or in a new one; that span's traceparent is kept in the events' metadata.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orderflow {

struct TraceParent {
  std::string trace_id;    // 32 lower-case hex digits, not all zero
  std::string parent_id;   // 16 lower-case hex digits, not all zero: the span that made this
  std::uint8_t flags = 0;  // bit 0: sampled
};

// Version 00 exactly (55 characters); a later version by its first four fields, as the
// specification asks. nullopt for anything else (version ff, all-zero ids, upper case, ...).
std::optional<TraceParent> parse_traceparent(std::string_view header);
// "00-TRACE_ID-PARENT_ID-FLAGS".
std::string format_traceparent(const TraceParent& t);

// A new span in the trace of `caller` (its flags too), or in a new sampled trace when
// there is none: a random span id, random ids from a per-thread generator. Thread-safe.
TraceParent child_span(const std::optional<TraceParent>& caller);

}  // namespace orderflow
