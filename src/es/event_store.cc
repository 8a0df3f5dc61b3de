#include "es/event_store.h"

#include <future>

namespace orderflow::es {

Result<AppendResult> EventStore::append(AppendRequest req) {
  std::promise<Result<AppendResult>> promise;
  auto answer = promise.get_future();
  append_async(std::move(req), [&promise](Result<AppendResult> r) { promise.set_value(std::move(r)); });
  return answer.get();
}

Result<std::vector<RecordedEvent>> EventStore::read_all(Position from_position, std::size_t max,
                                                       const EventFilter& filter) {
  std::vector<RecordedEvent> events;
  auto scanned = scan_all(from_position, max, filter,
                          [&](const RecordedEvent& e) { events.push_back(e); });
  if (!scanned) return fail(scanned.error());
  return events;
}

}  // namespace orderflow::es
