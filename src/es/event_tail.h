// The newest durable events, kept in memory. Every live subscriber (each projection, the
// saga, the SSE feed) reads the head of the log; served from here, a new event is decoded
// once when it is written instead of being re-read from the database by each of them.
//
// Promise: every durable event with position >= covered_from() is held, in position
// order; push() is only ever given durable events, in position order. Positions need not
// be contiguous. The oldest events are dropped past the limits; a reader asking for
// positions below covered_from() reads the database instead.
//
// Thread safety: one pusher at a time; any number of concurrent scans.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "core/mutex.h"
#include "es/event.h"

namespace orderflow::es {

// Enough for live subscribers a few batches behind; one further behind catches up from
// the database. Small against the memory budget (docs/design.md §5: 150 MB serving 10M events).
struct EventTailLimits {
  std::size_t max_events = 20000;
  std::size_t max_bytes = 16u << 20;  // of events as held (strings and their records)
};

class EventTail {
 public:
  explicit EventTail(EventTailLimits limits = {}) : limits_(limits) {}

  // Adds newly durable events, positions ascending and above every held one.
  void push(std::vector<RecordedEvent>&& events) EXCLUDES(mu_);

  // Every durable event below `end` has been pushed (a reader of the log found nothing
  // more): scans from below `end` end there, and a tail holding nothing covers from `end`.
  void cover_until(Position end) EXCLUDES(mu_);

  // Drops every held event; the covered range starts again at the next push or cover_until.
  void clear() EXCLUDES(mu_);

  // EventStore::scan_all over the held events, if from_position >= covered_from():
  // returns the position to continue from; nullopt if the caller must read the database.
  std::optional<Position> scan(Position from_position, std::size_t max, const EventFilter& filter,
                               const std::function<void(const RecordedEvent&)>& fn) const EXCLUDES(mu_);

  // The lowest position from which every durable event is held (none before the first push).
  std::optional<Position> covered_from() const EXCLUDES(mu_);

 private:
  static std::size_t bytes_of(const RecordedEvent& e);

  const EventTailLimits limits_;
  mutable SharedMutex mu_;
  std::deque<RecordedEvent> events_ GUARDED_BY(mu_);
  std::size_t bytes_ GUARDED_BY(mu_) = 0;
  std::optional<Position> covered_from_ GUARDED_BY(mu_);
  Position end_ GUARDED_BY(mu_){0};  // one past the last durable position pushed
};

}  // namespace orderflow::es
