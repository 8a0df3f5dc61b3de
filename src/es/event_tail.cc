#include "es/event_tail.h"

#include <algorithm>
#include <mutex>

#include "core/check.h"

namespace orderflow::es {

std::size_t EventTail::bytes_of(const RecordedEvent& e) {
  return sizeof(RecordedEvent) + e.event_id.size() + e.stream_id.str().size() + e.type.size() + e.data.size() +
         e.metadata.size();
}

void EventTail::push(std::vector<RecordedEvent>&& events) {
  if (events.empty()) return;
  WriterLock lk(mu_);
  OF_CHECK(events.front().position >= end_, "EventTail::push out of position order");
  // The first push starts the covered range: every later durable event is pushed after it.
  if (!covered_from_) covered_from_ = events.front().position;
  for (auto& e : events) {
    OF_CHECK(e.position >= end_, "EventTail::push out of position order");
    end_ = e.position + 1;
    bytes_ += bytes_of(e);
    events_.push_back(std::move(e));
  }
  while (!events_.empty() && (events_.size() > limits_.max_events || bytes_ > limits_.max_bytes)) {
    bytes_ -= bytes_of(events_.front());
    covered_from_ = events_.front().position + 1;
    events_.pop_front();
  }
}

void EventTail::cover_until(Position end) {
  WriterLock lk(mu_);
  OF_CHECK(end >= end_, "EventTail::cover_until before the last event pushed");
  end_ = end;
  if (!covered_from_) covered_from_ = end;
}

void EventTail::clear() {
  WriterLock lk(mu_);
  events_.clear();
  bytes_ = 0;
  covered_from_.reset();
}

std::optional<Position> EventTail::covered_from() const {
  ReaderLock lk(mu_);
  return covered_from_;
}

std::optional<Position> EventTail::scan(Position from_position, std::size_t max, const EventFilter& filter,
                                        const std::function<void(const RecordedEvent&)>& fn) const {
  ReaderLock lk(mu_);
  if (!covered_from_ || from_position < *covered_from_) return std::nullopt;
  auto it = std::lower_bound(events_.begin(), events_.end(), from_position,
                             [](const RecordedEvent& e, Position p) { return e.position < p; });
  Position next = from_position;
  std::size_t passed = 0;
  for (; it != events_.end() && passed < max; ++it) {
    next = it->position + 1;
    if (!filter.matches(*it)) continue;
    fn(*it);
    ++passed;
  }
  // Everything held was examined: nothing durable lies between it and end_.
  if (it == events_.end()) next = std::max(next, end_);
  return next;
}

}  // namespace orderflow::es
