#include "app/event_log.h"

#include <algorithm>
#include <boost/json.hpp>

namespace orderflow::app {

Result<std::vector<es::RecordedEvent>> EventLog::stream(const es::StreamId& stream, es::StreamVersion from,
                                                        std::size_t limit, bool must_exist) {
  auto events = store_.read_stream(stream, from, limit, es::Direction::forward);
  if (!events || !events->empty() || !must_exist) return events;
  OF_ASSIGN_OR_RETURN(auto version, store_.stream_version(stream));
  if (version == es::kNoStream) return fail(Errc::not_found, "no stream " + stream.str());
  return events;
}

Result<es::Position> EventLog::page(es::Position from, std::size_t limit, const es::EventFilter& filter,
                                    const std::function<bool(const es::RecordedEvent&)>& take, std::size_t chunk) {
  std::optional<es::Position> left_out;  // the first event `take` refused
  es::Position next = std::max(from, es::Position{1});
  for (std::size_t left = limit; left > 0 && !left_out;) {
    const std::size_t want = std::min(left, chunk);
    std::size_t passed = 0;
    OF_ASSIGN_OR_RETURN(auto scanned, store_.scan_all(next, want, filter, [&](const es::RecordedEvent& e) {
      ++passed;
      if (!left_out && !take(e)) left_out = e.position;
    }));
    next = scanned;
    if (passed < want) break;  // nothing more matches
    left -= passed;
  }
  return left_out.value_or(next);
}

Result<std::string> EventLog::order_owner(const std::string& order_id) {
  OF_ASSIGN_OR_RETURN(auto events,
                      store_.read_stream(es::StreamId("order-" + order_id), es::StreamVersion{0}, 1, es::Direction::forward));
  if (events.empty()) return std::string();
  boost::system::error_code ec;
  auto data = boost::json::parse(events.front().data, ec);
  const auto* owner = !ec && data.is_object() ? data.as_object().if_contains("customer_id") : nullptr;
  if (!owner || !owner->is_string())
    return fail(Errc::corrupt, "the first event of order " + order_id + " names no customer_id");
  return std::string(owner->as_string());
}

double EventLog::age_seconds(es::Position position, std::int64_t now_ms) {
  auto events = store_.read_all(position, 1);
  if (!events || events->empty()) return 0;
  return static_cast<double>(std::max<std::int64_t>(0, now_ms - events->front().recorded_at_ms)) / 1000;
}

}  // namespace orderflow::app
