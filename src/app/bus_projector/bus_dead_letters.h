// The bus-fed projector's dead letters as the read-model database keeps them (docs/api.md
// §10): `bus_dead_letters`, one row per held stream (the event that could not be applied,
// and why; every later event of the stream waits behind it), and
// `bus_dead_letters_retried`, the rows an operator re-drove, kept with when and by whom.
// A held row moves to the retried table in the transaction that releases its stream.
//
// A dead letter's id is derived from its row (a UUIDv8 of its time, stream and version),
// so the held table, which predates ids, needs no new column and an id names the same
// dead letter after a restart.
//
// Thread safety: list() and find() from any thread (reader connections); create(),
// hold() and release() from the projector's thread, the one holding the table's claim.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/result.h"
#include "es/event.h"
#include "es/read_model_db.h"

namespace orderflow::app::bus_projector {

// The "projection" the dead-letter tables are written under (ReadModelDb::claim, transaction).
inline constexpr const char* kDeadLetterTables = "bus-dead-letters";

struct BusDeadLetter {
  std::string dead_letter_id;
  es::StreamId stream_id;
  es::StreamVersion version{0};  // of the event that could not be applied
  std::string event_id;
  std::string reason;
  std::int64_t at_ms = 0;
  std::optional<std::int64_t> retried_at_ms;  // none: the stream is still held
  std::string retried_by;                     // the actor of the retry, when retried
  // Filled by BusProjector::dead_letters(), not stored: the durable consumer or group, and
  // the subject or topic the event came on (PREFIX.CATEGORY of its stream).
  std::string consumer, subject;
};

// The id of the dead letter of (stream, version) recorded at `at_ms`.
std::string bus_dead_letter_id(const es::StreamId& stream_id, es::StreamVersion version, std::int64_t at_ms);

class BusDeadLetterTables {
 public:
  explicit BusDeadLetterTables(es::ReadModelDb& db) : db_(db) {}

  // Creates both tables if missing (under the claim of kDeadLetterTables).
  Result<void> create();
  // The streams held now.
  Result<std::set<es::StreamId>> held_streams();
  // Holds `stream_id` behind its event (stream_id, version, event_id) with `reason`; a
  // stream already held keeps its first dead letter.
  Result<void> hold(const es::StreamId& stream_id, es::StreamVersion version, const std::string& event_id,
                    const std::string& reason, std::int64_t at_ms);
  // Every dead letter, held and retried, oldest first.
  Result<std::vector<BusDeadLetter>> list();
  // The dead letter of `id`, held or retried; nullopt if there is none.
  Result<std::optional<BusDeadLetter>> find(const std::string& id);
  // Releases the held `letter`'s stream: its row moves to the retried table, marked with
  // `retried_at_ms` and `actor`, in one transaction.
  Result<void> release(const BusDeadLetter& letter, std::int64_t retried_at_ms, const std::string& actor);

 private:
  es::ReadModelDb& db_;
};

}  // namespace orderflow::app::bus_projector
