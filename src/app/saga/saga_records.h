// The one reader of the saga's own records (domain/saga.h): its bookkeeping in
// saga-<order_id> and the dead letters in deadletters-saga. The saga folding the log, the
// admin routes and /metrics all read them through here.
//
// Policy for a record that does not decode (not JSON, a field missing or of another type,
// an unknown step or state, an unknown type in the stream): it is Errc::corrupt, and the
// message names its stream, type and position. No reader skips it or fills in a default.
// A caller that answers someone (the admin routes) answers that error; the saga, which has
// nobody to answer, reports it as a background failure (core/failures.h) and goes on
// without the record.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "domain/saga.h"
#include "es/event_store.h"

namespace orderflow::app::saga {

inline const es::StreamId kDeadLetterStream("deadletters-saga");
inline es::StreamId saga_stream(const std::string& order_id) { return es::StreamId("saga-" + order_id); }

// A record of saga-<order_id>, or of deadletters-saga.
Result<domain::saga::Event> decode_saga_record(const es::RecordedEvent& e);
Result<domain::saga::DeadLetterEvent> decode_dead_letter(const es::RecordedEvent& e);

// The last SagaEnded among the newest 50 records of saga-<order_id> (a saga writes a few
// per activation), if any.
Result<std::optional<domain::saga::SagaEnded>> last_saga_end(es::EventStore& store, const std::string& order_id);

struct DeadLetter {
  domain::saga::DeadLetterRecorded recorded;
  std::int64_t recorded_at_ms = 0;
  std::optional<std::int64_t> retried_at_ms;  // the last DeadLetterRetried of it
};
// Every dead letter, oldest first, folded from their stream.
Result<std::vector<DeadLetter>> dead_letters(es::EventStore& store);

// How many DeadLetterRecorded and DeadLetterRetried the stream holds, by their type alone
// (for /metrics, scraped often: no record's data is read).
struct DeadLetterCounts {
  std::uint64_t recorded = 0, retried = 0;
};
Result<DeadLetterCounts> count_dead_letters(es::EventStore& store);

}  // namespace orderflow::app::saga
