#include "es/event_store.h"

#include <future>

namespace orderflow::es {

Result<AppendResult> EventStore::append(AppendRequest req) {
  std::promise<Result<AppendResult>> promise;
  auto answer = promise.get_future();
  append_async(std::move(req), [&promise](Result<AppendResult> r) { promise.set_value(std::move(r)); });
  return answer.get();
}

Result<std::vector<RecordedEvent>> EventStore::read_events(std::span<const std::string> event_ids) {
  std::vector<RecordedEvent> events;
  for (const auto& id : event_ids) {
    OF_ASSIGN_OR_RETURN(auto found, read_event(id));
    if (found) events.push_back(std::move(*found));
  }
  return events;
}

Result<std::vector<RecordedEvent>> EventStore::read_all(Position from_position, std::size_t max,
                                                       const EventFilter& filter) {
  std::vector<RecordedEvent> events;
  OF_RETURN_IF_ERROR(scan_all(from_position, max, filter, [&](const RecordedEvent& e) { events.push_back(e); }));
  return events;
}

void check_chain(StoredLog& log, std::vector<std::string>& breaks) {
  // The hash of the event before: as stored where the store keeps it, else as computed.
  EventHash before = kNoEventHash;
  Position expected{1};
  // Where the last stored hash held: a store that keeps hashes at some rows only can
  // name a break no closer than the rows since then.
  Position checked_through{0};
  bool named_since = false;  // a row since then was named already (its checksum)
  auto check = [&](const RecordedEvent& e, const StoredHashes& stored) {
    if (e.position != expected)
      breaks.push_back((e.position == expected + 1 ? "position " + to_string(expected) + " is"
                                                   : "positions " + to_string(expected) + " to " +
                                                         to_string(e.position - 1) + " are") +
                       " missing from the log");
    const EventHash prev = stored.prev_hash.value_or(before);
    const EventHash computed = event_hash(prev, hashed_fields(e));
    // One line per changed row: its checksum is looked at only when its hash holds.
    if (stored.hash && *stored.hash != computed) {
      if (stored.prev_hash || checked_through + 1 == e.position)
        breaks.push_back(check_event_hash(e, prev, *stored.hash).error().message);
      else if (!named_since)
        breaks.push_back("the hash chain breaks between positions " + to_string(checked_through + 1) + " and " +
                         to_string(e.position) + ": the events there do not give the hash stored at " +
                         describe_stored(e) + " (one of them was rewritten, or that hash was)");
    } else if (stored.checksum) {
      if (auto r = check_event_checksum(e, *stored.checksum); !r) {
        breaks.push_back(r.error().message);
        named_since = true;
      }
    }
    if (stored.prev_hash)
      if (auto r = check_chain_link(e, *stored.prev_hash, before); !r) breaks.push_back(r.error().message);
    before = stored.hash.value_or(computed);
    if (stored.hash) {
      checked_through = e.position;
      named_since = false;
    }
    expected = e.position + 1;
  };
  for (Position from{1};;) {
    auto next = log.scan_stored(from, 10000, check);
    if (!next) {
      breaks.push_back("the log cannot be read past position " + to_string(expected - 1) + ": " +
                       next.error().message);
      return;
    }
    if (*next == from) return;
    from = *next;
  }
}

Result<std::unordered_map<StreamId, StreamVersion>> stream_versions_at(EventStore& store, const EventFilter& filter,
                                                                       Position through) {
  std::unordered_map<StreamId, StreamVersion> versions;
  for (Position from{1}; from <= through;) {
    OF_ASSIGN_OR_RETURN(const auto next, store.scan_all(from, 10000, filter, [&](const RecordedEvent& e) {
      if (e.position <= through) versions[e.stream_id] = e.version;
    }));
    if (next == from) break;
    from = next;
  }
  return versions;
}

}  // namespace orderflow::es
