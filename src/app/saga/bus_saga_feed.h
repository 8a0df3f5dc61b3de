// The fulfilment saga fed from a message bus instead of the log (`serve --roles saga --bus`,
// without the relay role). The core (fulfilment_saga.h) must fold the log in position
// order, and the bus keeps order only within a stream (a Kafka partition, a JetStream
// subject's publish order), so the feed puts the relay's messages back in the log's order:
// every message names the position of the event before it in the log
// (orderflow-previous-position, app/relay/relay.h), and an event is handed to the saga only
// once every event before it has been (ReorderBuffer).
//
// Promises:
// - Exact log order, whatever order the bus delivers in: an event is released when the
//   event before it (its previous position) is below next(); a message without that header
//   (published by an older relay) only when its position is next() itself.
// - A gap that stays open (a message dead-lettered, held back by the bus, or a position
//   that is not an event) is filled from the event store once it has waited `gap_wait`, or
//   at once when `max_buffered` events wait behind it: the store's events from next() up to
//   the first one held are folded, in order, and the bus's copies of them acknowledged as
//   repeats. So the feed never stalls for good and never folds out of order. Likewise when
//   nothing is held and next() has not moved for `gap_wait` while the store has more (the
//   bus brings nothing: a consumer group rebalancing, a relay behind): the store's events up
//   to its last position are folded. The saga's view of the log is thus never much more than
//   `gap_wait` behind the store, which its step deadlines (5 s) count on: a step whose
//   answer it could not see in time would be retried and, in the end, given up.
// - A message is acknowledged once the saga folded its event (or it is a repeat of one
//   folded). What a restart could lose that way it reads from the store: the feed starts by
//   folding the store from the saga's checkpoint to the store's last position at start (the
//   core's horizon), then takes the bus from there, skipping what it folded. Every event
//   after that horizon was acknowledged by no process (none had folded it), so the bus
//   still holds it for this consumer.
// - A message that cannot be decoded (or names a malformed previous position) goes to the
//   consumer's dead letters with its reason; the feed goes on (its event comes from the
//   store when its gap is filled). With a `dead_letter_db` it is first recorded there
//   (table saga_bus_dead_letters, app/bus_projector/bus_dead_letters.h: its reason, subject,
//   and the event id, stream, version and position its headers name; its id derived from
//   the event they name, else from what the bus names the message by, so a message
//   delivered again because its dead-letter publish failed is recorded once), so
//   GET /api/v1/admin/dead-letters lists it; redrive() retries it: on the feed's thread,
//   between two fetches, the store is folded through its event (or, if the message named
//   no position, through the store's last), unless the saga has folded it already (its gap
//   filled), and only then is it marked retried. The saga folds an event once, so a retry
//   never makes it perform a step twice.
// - An unreachable bus (at start or later) or a store that cannot be read is retried after
//   a back-off (100 ms doubling to 5 s), shown by status(); never a crash. Meanwhile the
//   store bridges the bus as above (once next() has not moved for gap_wait), so the sagas
//   in flight do not time out for it. A batch the saga could not fold (a lookup failed) is
//   handed to it again after the back-off.
//
// Threads: `of-saga-bus` (fetches, reorders, folds, acknowledges); status() from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/bus_projector/bus_dead_letters.h"
#include "app/bus_projector/redrive_queue.h"
#include "core/mutex.h"
#include "es/bus.h"
#include "es/event_store.h"
#include "es/subscription.h"

namespace orderflow::app::saga {

// Events of every stream, delivered in any order, released in the log's order. Single
// threaded, no I/O.
class ReorderBuffer {
 public:
  // `next`: the position from which events are wanted (everything below it is folded).
  explicit ReorderBuffer(es::Position next) : next_(next) {}

  // Holds a delivered event until its turn (a second delivery of one held adds its tag).
  // `previous`: the position of the event before it in the log, if its message named it.
  // False: it is below next(), folded already; acknowledge it as a repeat.
  bool add(es::RecordedEvent e, std::optional<es::Position> previous, std::uint64_t tag);

  // The events whose turn has come, in log order, at most `max`, and the position after
  // them. They stay held until release().
  struct Ready {
    std::vector<es::RecordedEvent> events;
    es::Position next{0};
  };
  Ready ready(std::size_t max) const;

  // Everything below `next` is folded: drops the events held there and answers their tags.
  std::vector<std::uint64_t> release(es::Position next);

  // The first event held when its turn has not come (a gap from next() up to it), if any.
  std::optional<es::Position> gap() const;
  es::Position next() const { return next_; }
  std::size_t size() const { return held_.size(); }

 private:
  struct Held {
    es::RecordedEvent event;
    std::optional<es::Position> previous;
    std::vector<std::uint64_t> tags;
  };
  // Whether `h` comes right after everything below `next`.
  static bool follows(const Held& h, es::Position next) {
    return h.previous ? *h.previous < next : h.event.position == next;
  }

  es::Position next_;
  std::map<es::Position, Held> held_;
};

struct BusSagaFeedOptions {
  std::string bus;  // the bus URL, as status() shows it
  std::string topic_prefix = "orderflow.events";
  std::string consumer = "orderflow-saga";  // the durable consumer or group, as status() shows it
  std::size_t batch_size = 500;             // messages a fetch, and events a batch handed to the saga
  std::chrono::milliseconds fetch_wait{100};
  // How long a gap may stay open before it is filled from the store. Longer than a bus
  // usually holds a message back (Kafka partitions fetched in turn), short enough that a
  // dead-lettered message delays the sagas behind it by little.
  std::chrono::milliseconds gap_wait{2000};
  // Events held behind a gap before it is filled from the store at once. Memory budget: an
  // event is ~1 KB held, 20000 ~20 MB.
  std::size_t max_buffered = 20000;
  std::size_t store_page = 1000;  // events read from the store at a time
  // Where its dead letters are recorded and retried from (kSagaDeadLetters); null: only on
  // the bus's dead-letter subject. Must outlive the feed.
  es::ReadModelDb* dead_letter_db = nullptr;
};

// `catching up` (folding the store up to the horizon), `consuming`, `retrying` (the last
// fetch, read or fold failed: tried again after a back-off), `stopped`.
struct BusSagaFeedStatus {
  std::string bus, consumer, state;
  es::Position next{0};      // the position the saga folds next
  std::size_t buffered = 0;  // events held for their turn
  // The gap waited for: from `next` up to the first event held (none: no gap), and since when.
  std::optional<es::Position> gap_until;
  std::int64_t gap_ms = 0;
  std::uint64_t folded = 0;         // messages folded and acknowledged
  std::uint64_t repeats = 0;        // messages acknowledged as repeats of events folded
  std::uint64_t out_of_order = 0;   // messages delivered after one of a later position
  std::uint64_t from_store = 0;     // events folded from the store (catch-up and gaps)
  std::uint64_t gaps_filled = 0;    // gaps filled from the store (a gap, or the bus behind it)
  std::uint64_t dead_lettered = 0;  // since start
  std::optional<std::string> last_error;
};

class BusSagaFeed {
 public:
  static constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
  static constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);

  // Feeds `handler` (as a subscription would: events of `categories` in position order,
  // and the position after them) from `from` on: the store up to `horizon`, then the bus.
  // `store` and `bus` must outlive the feed.
  BusSagaFeed(es::EventStore& store, es::BusConsumer& bus, BusSagaFeedOptions options,
              std::vector<std::string> categories, es::Position from, es::Position horizon, es::BatchHandler handler);
  ~BusSagaFeed();  // stop()
  BusSagaFeed(const BusSagaFeed&) = delete;
  BusSagaFeed& operator=(const BusSagaFeed&) = delete;

  void start();
  // Stops after the batch in hand; a retry not done yet is answered unavailable. Releases
  // the dead-letter tables' claim: another process running the saga records them (a runner
  // whose lease moved stops its feed). Idempotent.
  void stop() EXCLUDES(mu_);
  BusSagaFeedStatus status() const EXCLUDES(mu_);
  // Retries the dead letter `id` (see above) and answers `done` from the feed's thread once
  // it is marked retried: not_found, invalid_state for one retried already, unavailable
  // without a dead_letter_db, while stopped, or while its position is not readable in the
  // store yet, or the error of a read or a fold.
  void redrive(std::string id, std::string actor, std::function<void(Result<bus_projector::Redriven>)> done)
      EXCLUDES(mu_);

 private:
  Result<bus_projector::Redriven> redrive_now(const bus_projector::RedriveQueue::Request& request);
  // Claims the dead-letter tables (each time: cheap while held), created once.
  Result<void> claim_tables();
  // Records a message it cannot fold in the dead-letter table, if it has one.
  Result<void> record_dead_letter(const es::BusDelivery& d, const std::string& reason,
                                  const Result<es::RecordedEvent>& decoded);
  void loop();
  Result<void> catch_up();
  Result<void> consume();
  // Hands the buffer's ready events to the saga and acknowledges their messages.
  Result<void> fold_ready(std::vector<std::uint64_t>& acks);
  // Folds the store's events from next() through `until`.
  Result<void> fill(es::Position until, std::vector<std::uint64_t>& acks);
  Result<void> hand(std::vector<es::RecordedEvent> events, es::Position next);
  bool wanted(const es::RecordedEvent& e) const;
  void set_state(const char* state, std::optional<std::string> error) EXCLUDES(mu_);
  void publish_progress() EXCLUDES(mu_);

  es::EventStore& store_;
  es::BusConsumer& bus_;
  BusSagaFeedOptions options_;
  std::vector<std::string> categories_;
  es::EventFilter filter_;
  const es::Position horizon_;
  es::BatchHandler handler_;
  ReorderBuffer buffer_;  // the loop's thread only
  // Since when next() has not moved (the loop's thread only), and next() then.
  std::optional<std::chrono::steady_clock::time_point> gap_since_;
  std::optional<es::Position> gap_at_;
  es::Position highest_delivered_{0};  // of the messages fetched
  std::optional<bus_projector::BusDeadLetterTables> tables_;
  bool tables_ready_ = false;  // created (the loop's thread only)

  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  bus_projector::RedriveQueue redrives_;  // open between start() and stop()
  BusSagaFeedStatus status_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace orderflow::app::saga
