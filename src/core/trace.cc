#include "core/trace.h"

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <random>

namespace orderflow {

namespace {

bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

std::mt19937_64& engine() {
  thread_local std::mt19937_64 e{std::random_device{}()};
  return e;
}

std::string random_hex(std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  while (out.size() < digits) {
    auto bits = engine()();
    for (int i = 0; i < 16 && out.size() < digits; ++i, bits >>= 4) out += kHex[bits & 0xf];
  }
  return all_zero(out) ? random_hex(digits) : out;
}

std::atomic<double> sample_ratio{1.0};
std::atomic<SpanSink*> sink{nullptr};

}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view h) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  const auto version = h.substr(0, 2), trace_id = h.substr(3, 32), parent_id = h.substr(36, 16),
             flags = h.substr(53, 2);
  if (!is_lower_hex(version) || version == "ff") return std::nullopt;
  if (version == "00" ? h.size() != 55 : h.size() > 55 && h[55] != '-') return std::nullopt;
  if (!is_lower_hex(trace_id) || all_zero(trace_id) || !is_lower_hex(parent_id) || all_zero(parent_id) ||
      !is_lower_hex(flags))
    return std::nullopt;
  return TraceParent{std::string(trace_id), std::string(parent_id),
                     static_cast<std::uint8_t>(std::stoi(std::string(flags), nullptr, 16))};
}

std::string format_traceparent(const TraceParent& t) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "00-" + t.trace_id + "-" + t.parent_id + "-";
  out += kHex[t.flags >> 4];
  out += kHex[t.flags & 0xf];
  return out;
}

std::optional<TraceParent> traceparent_in_metadata(std::string_view metadata) {
  if (metadata.find("traceparent") == std::string_view::npos) return std::nullopt;  // spares the parse
  boost::system::error_code ec;
  auto v = boost::json::parse(metadata, ec);
  const auto* t = !ec && v.is_object() ? v.as_object().if_contains("traceparent") : nullptr;
  if (!t || !t->is_string()) return std::nullopt;
  return parse_traceparent(std::string_view(t->as_string()));
}

TraceParent child_span(const std::optional<TraceParent>& caller) {
  if (caller) return {caller->trace_id, random_hex(16), caller->flags};
  const double ratio = sample_ratio.load(std::memory_order_relaxed);
  const bool sampled = ratio >= 1 || std::uniform_real_distribution<double>(0, 1)(engine()) < ratio;
  return {random_hex(32), random_hex(16), static_cast<std::uint8_t>(sampled ? 1 : 0)};
}

void configure_tracing(double ratio, SpanSink* s) {
  sample_ratio = ratio;
  sink = s;
}

bool tracing_enabled() { return sink.load(std::memory_order_relaxed) != nullptr; }

void record_span(Span span) {
  if (auto* s = sink.load(std::memory_order_acquire); s && span.context.sampled()) s->take(std::move(span));
}

std::int64_t now_unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace orderflow
