// The dead letters of a bus consumer as the read-model database keeps them (docs/api.md
// §10), in two layouts of the same code:
// - the bus-fed projector's (kProjectorDeadLetters): `bus_dead_letters`, one row per held
//   stream (the event that could not be applied, and why; every later event of the stream
//   waits behind it), and `bus_dead_letters_retried`, the rows an operator re-drove, kept
//   with when and by whom. A dead letter's id is derived from its row (a UUIDv8 of its
//   time, stream and version), so the held table, which predates ids, needs no new column
//   and an id names the same dead letter after a restart.
// - the bus-fed saga's (kSagaDeadLetters): `saga_bus_dead_letters`, one row per message it
//   could not decode (nothing is held: the saga fills the gap from the store), with its id
//   (derived from the message's identity: delivered again, it is the same dead letter), the
//   position and subject when known, and `saga_bus_dead_letters_retried`.
// A row moves to the retried table in the transaction that marks it retried.
//
// Thread safety: list() and find() from any thread (reader connections); create(),
// hold() and release() from the projector's thread, the one holding the table's claim.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "es/event.h"
#include "es/read_model_db.h"

namespace orderflow::app::bus_projector {

// The "projection" the dead-letter tables are written under (ReadModelDb::claim, transaction).
inline constexpr const char* kDeadLetterTables = "bus-dead-letters";

// Where a consumer's dead letters are kept and how.
struct BusDeadLetterLayout {
  const char* claim;    // the "projection" the tables are written under
  const char* held;     // the dead letters not retried yet
  const char* retried;  // those retried
  // One row per held stream, its id derived from it (the projector's); else one row per
  // message, with its id, position and subject (the saga's).
  bool per_stream;
};
inline constexpr BusDeadLetterLayout kProjectorDeadLetters{kDeadLetterTables, "bus_dead_letters",
                                                           "bus_dead_letters_retried", true};
inline constexpr BusDeadLetterLayout kSagaDeadLetters{"saga-bus-dead-letters", "saga_bus_dead_letters",
                                                      "saga_bus_dead_letters_retried", false};

struct BusDeadLetter {
  std::string dead_letter_id;
  es::StreamId stream_id;        // empty: the message did not name it (the saga's)
  es::StreamVersion version{0};  // of the event that could not be applied (kNoStream: not known)
  std::string event_id;          // empty: not known
  std::string reason;
  std::int64_t at_ms = 0;
  std::optional<std::int64_t> retried_at_ms;  // none: the stream is still held
  std::string retried_by;                     // the actor of the retry, when retried
  // The durable consumer or group (filled by the consumer's dead_letters(), not stored) and
  // the subject or topic the event came on (the projector's: PREFIX.CATEGORY of its stream,
  // not stored either; the saga's: the message's, stored).
  std::string consumer, subject;
  // The message's position in the log, when it named one (the saga's).
  std::optional<es::Position> position;
};

// A dead letter retried. The projector's: its held stream's events read again from the
// store and applied, the stream released. The saga's: the store folded through its event.
struct Redriven {
  std::string dead_letter_id;
  std::string consumer;
  es::StreamId stream_id;
  // The projector's: the stream's last version, now applied (none: the store has no event
  // of it). The saga's: the event's version, if the message named it.
  std::optional<es::StreamVersion> version;
  std::size_t events = 0;  // events read again from the store (those already applied or folded skipped)
  std::int64_t retried_at_ms = 0;
  // The saga's: the position through which it has folded the log (its event's, or the
  // store's last when the message named none).
  std::optional<es::Position> position;
};

// A consumer whose dead letters GET /api/v1/admin/dead-letters lists and retries
// (app/dead_letters.h): the bus-fed projector, the bus-fed saga.
class BusDeadLetterSource {
 public:
  virtual ~BusDeadLetterSource() = default;
  // Held and retried, oldest first (any thread).
  virtual Result<std::vector<BusDeadLetter>> dead_letters() = 0;
  // Retries the dead letter `id` and answers `done` once done (on the consumer's thread,
  // or inline): not_found, invalid_state for one retried already, unavailable while the
  // consumer does not run here, or the error of the retry.
  virtual void redrive(std::string id, std::string actor, std::function<void(Result<Redriven>)> done) = 0;
};

// The id of the dead letter of (stream, version) recorded at `at_ms`.
std::string bus_dead_letter_id(const es::StreamId& stream_id, es::StreamVersion version, std::int64_t at_ms);

class BusDeadLetterTables {
 public:
  explicit BusDeadLetterTables(es::ReadModelDb& db, const BusDeadLetterLayout& layout = kProjectorDeadLetters)
      : db_(db), layout_(layout) {}

  // Creates both tables if missing (no claim needed: a reader may create them to list).
  Result<void> create();
  // The streams held now.
  Result<std::set<es::StreamId>> held_streams();
  // Holds `stream_id` behind its event (stream_id, version, event_id) with `reason`; a
  // stream already held keeps its first dead letter.
  Result<void> hold(const es::StreamId& stream_id, es::StreamVersion version, const std::string& event_id,
                    const std::string& reason, std::int64_t at_ms);
  // One message's dead letter (a per-message layout): `letter` as it came, its id derived
  // from the message's identity: its event id, else its stream and version, as its headers
  // named them, else its subject and `message`, what the bus names it by
  // (es::BusDelivery::id). So a message delivered again (its dead-letter publish failed) is
  // recorded once, with the time it was first recorded. Answers the id.
  Result<std::string> record(BusDeadLetter letter, std::string_view message);
  // Every dead letter, held and retried, oldest first.
  Result<std::vector<BusDeadLetter>> list();
  // The dead letter of `id`, held or retried; nullopt if there is none.
  Result<std::optional<BusDeadLetter>> find(const std::string& id);
  // Releases the held `letter`'s stream: its row moves to the retried table, marked with
  // `retried_at_ms` and `actor`, in one transaction.
  Result<void> release(const BusDeadLetter& letter, std::int64_t retried_at_ms, const std::string& actor);

 private:
  es::ReadModelDb& db_;
  BusDeadLetterLayout layout_;
};

}  // namespace orderflow::app::bus_projector
