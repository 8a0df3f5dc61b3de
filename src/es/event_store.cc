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

void check_chain(StoredLog& log, std::vector<std::string>& breaks) {
  EventHash before = kNoEventHash;
  Position expected = 1;
  auto check = [&](const RecordedEvent& e, const StoredHashes& stored) {
    const auto& [prev, hash, checksum] = stored;
    if (e.position != expected)
      breaks.push_back((e.position == expected + 1 ? "position " + std::to_string(expected) + " is"
                                                   : "positions " + std::to_string(expected) + " to " +
                                                         std::to_string(e.position - 1) + " are") +
                       " missing from the log");
    // One line per changed row: its checksum is looked at only when its hash holds.
    if (auto r = check_event_hash(e, prev, hash); !r)
      breaks.push_back(r.error().message);
    else if (checksum)
      if (auto r = check_event_checksum(e, prev, hash, *checksum); !r) breaks.push_back(r.error().message);
    if (auto r = check_chain_link(e, prev, before); !r) breaks.push_back(r.error().message);
    before = hash;
    expected = e.position + 1;
  };
  for (Position from = 1;;) {
    auto next = log.scan_stored(from, 10000, check);
    if (!next) {
      breaks.push_back("the log cannot be read past position " + std::to_string(expected - 1) + ": " +
                       next.error().message);
      return;
    }
    if (*next == from) return;
    from = *next;
  }
}

}  // namespace orderflow::es
