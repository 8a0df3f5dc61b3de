// The event log as the entrances read it (HTTP today, gRPC next): a stream's events, pages
// of the global log, the live tail, and what the store says of its own health. Reads here
// go to the store itself, never to a read model, so they are never behind. Transports call
// this, never es::EventStore: what a read means (a missing stream, a full page, an order's
// owner) is decided once, here.
//
// Every call blocks on the store (a SQLite read, a PostgreSQL round trip) and may be made
// from any thread at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "app/projections/history.h"
#include "es/event_store.h"

namespace orderflow::app {

class EventLog {
 public:
  explicit EventLog(es::EventStore& store) : store_(store) {}

  // At most `limit` events of `stream` from version `from`. not_found when the stream has
  // no events and `must_exist`; otherwise a missing stream reads as no events.
  Result<std::vector<es::RecordedEvent>> stream(const es::StreamId& stream, es::StreamVersion from, std::size_t limit,
                                                bool must_exist);

  // Offers the events of the log matching `filter` from position `from`, in order, to
  // `take` until it returns false (that event is not taken) or `limit` were taken. Returns
  // where the next page starts: the first event not taken, or past the last one read.
  // Reads `chunk` events at a time, so a page that fills early reads few beyond it.
  Result<es::Position> page(es::Position from, std::size_t limit, const es::EventFilter& filter,
                            const std::function<bool(const es::RecordedEvent&)>& take, std::size_t chunk = 100);

  // Waits until an event past `after` is durable or `timeout` passes: true if there is one.
  bool wait_for_events(es::Position after, std::chrono::milliseconds timeout) {
    return store_.wait_for_events(after, timeout);
  }

  // The customer_id of the order's OrderPlaced; "" when there is no such order. corrupt
  // when its first event names none.
  Result<std::string> order_owner(const std::string& order_id);

  // The position of the last durable event (0: none).
  Result<es::Position> last_position() { return store_.last_position(); }
  // Why the store refuses writes now (a full disk, a failed sync); nullopt when it writes.
  std::optional<Error> write_failure() { return store_.write_failure(); }
  // Seconds since the event at `position` was recorded; 0 when there is none yet.
  double age_seconds(es::Position position, std::int64_t now_ms);

  // The order as it was at `at_ms` (unix ms), folded from its events; nullopt if it did
  // not exist then.
  Result<std::optional<projections::Document>> order_at_time(const std::string& order_id, std::int64_t at_ms) {
    return projections::order_at_time(store_, order_id, at_ms);
  }

 private:
  es::EventStore& store_;
};

}  // namespace orderflow::app
