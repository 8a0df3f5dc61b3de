// The projector fed from a message bus instead of the log (`serve --roles projector --bus`):
// the relay's messages (app/relay/) are decoded back into events and applied to the same
// read models the log-tailing runner writes (app/projections/), through
// TableProjection::apply_delivered.
//
// Promises:
// - Each projection commits a batch's rows and the versions its streams reached in one
//   transaction; only once every projection committed are the messages acknowledged. A
//   message delivered again (after a crash, a lost ack) changes nothing: its (stream,
//   version) is at or below the stream's committed version and is skipped.
// - In order within a stream: an event whose stream's previous version is not applied yet
//   is not applied; it is delivered again (after kEarlyRetry x attempt, at most
//   kMaxEarlyRetry) until its turn comes, or dead-lettered as below once it has waited
//   `early_timeout` for it (of a stream's events waiting so, the lowest version first).
// - A batch that fails is applied one event at a time: the failing event is delivered again
//   (after failures x kRetryDelay) with the later events of its stream, and once it has
//   failed `max_attempts` times (counted in memory: a restart counts afresh) it goes to the
//   dead letters with its reason. Its stream is
//   then held (table bus_dead_letters, in the read-model database): every later event of
//   it is dead-lettered behind it, never applied past the gap (a sequenced dead letter).
// - A message that cannot be decoded, or whose type is unknown in a category the
//   projections fold, goes to the dead letters at once with its reason; the consumer goes
//   on. Events of categories no projection folds are acknowledged and skipped.
// - An unreachable bus (at start or later) is tried again after a back-off (100 ms
//   doubling to 5 s), shown by status(); never a crash.
// - A held stream is released by redrive() (an operator's retry of its dead letter): on
//   the projector's thread, between two fetches, the stream's events are read again from
//   the event store (as the relay would publish them: personal data revealed) and applied
//   in version order, the ones already applied skipped; only then is the dead letter marked
//   retried and the stream released, so the bus's later messages of it apply after them
//   and nothing of it is applied twice or out of order. The bus need not keep the message.
// - Messages the bus dropped before they were read (its retention; es::BusConsumer::dropped)
//   are not skipped: before the batch that told of them is applied, every event of their
//   topic's category (JetStream's wildcard: of every category the read models fold) is read
//   from the event store and applied (those applied already
//   skipped by their version); if that fails, the batch is delivered again and it is tried
//   again at the next fetch.
// - status().backlog: the consumer's unacknowledged messages as the bus counts them
//   (es::BusConsumer::backlog), asked at most every `backlog_every`.
//
// The entity projections fold an entity that is not in memory again from the event store
// (app/projections/entities.h), so this process still reads the store for those.
//
// Threads: `of-bus-proj` (fetches, applies, acknowledges); while a batch is applied, three
// `of-bus-copy` threads beside it, one a read model, each applying the whole batch in order
// (their commits overlap on PostgreSQL, where each read model writes on a connection of its
// own); status() from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app/bus_projector/bus_dead_letters.h"
#include "app/bus_projector/redrive_queue.h"
#include "core/latency.h"
#include "core/mutex.h"
#include "es/bus.h"
#include "es/projection.h"

namespace orderflow::app::projections {
class ReadSide;
class TableProjection;
}  // namespace orderflow::app::projections
namespace orderflow::es {
class EventStore;
}
namespace orderflow::app {
class PersonalData;
}

namespace orderflow::app::bus_projector {

struct BusProjectorOptions {
  std::string bus;  // the bus URL, as status() shows it
  std::string topic_prefix = "orderflow.events";
  std::size_t batch_size = 2000;
  std::chrono::milliseconds fetch_wait{200};
  int max_attempts = 5;  // deliveries of a failing event before it is dead-lettered
  // How long an event waits for its stream's previous version before it is dead-lettered.
  // Longer than the consumer's ack wait: a message a killed process fetched and never
  // acknowledged comes again only after it, while later ones keep coming.
  std::chrono::milliseconds early_timeout{90000};
  std::string consumer = "orderflow-projector";  // the durable consumer or group, as listings show it
  // Where redrive() reads a held stream's events again; null: dead letters cannot be
  // retried (unavailable). Must outlive the projector.
  es::EventStore* store = nullptr;
  // Reveals sealed personal data in what redrive() reads, as the relay does in what it
  // publishes; null: applied as stored. Must outlive the projector.
  PersonalData* personal_data = nullptr;
  std::chrono::milliseconds backlog_every{1000};
};

// `standby` (another process folds these read models: see start()), `connecting` (the bus
// has not answered yet), `consuming`, `retrying` (the last fetch or
// apply failed: trying again after a back-off), `stopped`.
struct BusProjectorStatus {
  std::string bus;
  std::string state;
  std::uint64_t applied = 0;        // messages applied (or skipped as repeats) and acknowledged
  std::uint64_t dead_lettered = 0;  // since start
  // Events read from the store for messages the bus dropped unread (recover_dropped), since start.
  std::uint64_t from_store = 0;
  std::size_t held = 0;  // streams held behind a dead letter now
  // The highest position of an event acknowledged, of any stream (at start: the highest
  // any read model applied): what /api/v1/admin/projections counts the lag from.
  es::Position position{0};
  // Messages the consumer has not acknowledged, as the bus counted them last (none: not
  // asked yet, or the last fetch or count failed).
  std::optional<std::uint64_t> backlog;
  // Append-to-read-model lag of the last event applied (0 before the first).
  double last_lag_ms = 0;
  std::optional<std::string> last_error;
  // Append-to-read-model lag (commit time - recorded_at) of the last kLagWindow events.
  std::size_t lag_window = 0;
  double lag_p50_ms = 0, lag_p99_ms = 0;
};

// What a read of a read model fed from the bus waits for (docs/api.md §10 "Reads"). The
// projector applies the streams' events out of position order and sees only what the bus
// brings, so it cannot tell that every event up to a position is applied; what it can tell
// is the version each stream reached (bus_versions) and the highest position applied.
// - A read of one entity (`stream` set) waits until the entity's stream has applied its
//   last event at or below `min_position`, or, without it, the stream's last event in the
//   store when the read arrived (read-your-writes for that entity: its read model folds
//   that stream alone). The version waited for is looked up in the event store.
// - Any other read (a list, the sales figures) waits, with `min_position`, until the
//   projection has applied an event at or past it (events of other streams before it may
//   still be on their way), and without it waits for nothing: it answers what is applied.
struct ReadTarget {
  std::string projection;  // orders, products, accounts or sales
  std::optional<es::StreamId> stream;
  std::optional<es::Position> min_position;
};

// Where a read stands, once it could answer or its deadline passed.
struct ReadStand {
  bool applied = false;    // what it waits for is applied
  es::Position position{0};  // the projection's highest position applied
  // A read of one entity: the stream's version waited for (kNoStream: nothing to wait for)
  // and the version applied (kNoStream: none).
  es::StreamVersion version = es::kNoStream;
  es::StreamVersion applied_version = es::kNoStream;
};

// A projection fed from the bus as /api/v1/admin/projections shows it.
struct BusProjection {
  std::string name;
  es::Position position{0};  // the highest position applied
};

// A decoded message: the event, or why it is not one.
Result<es::RecordedEvent> decode(const es::BusDelivery& d, const std::string& topic_prefix);

class BusProjector final : public BusDeadLetterSource {
 public:
  static constexpr std::chrono::milliseconds kEarlyRetry{50};  // x the attempt, up to kMaxEarlyRetry
  static constexpr std::chrono::milliseconds kMaxEarlyRetry{1000};
  static constexpr std::chrono::milliseconds kRetryDelay{200};
  static constexpr std::size_t kLagWindow = 65536;
  // How often a standby looks whether the read models' claims are free.
  static constexpr std::chrono::milliseconds kStandbyCheck{500};

  // `read` and `bus` must outlive the projector.
  BusProjector(projections::ReadSide& read, es::BusConsumer& bus, BusProjectorOptions options);
  ~BusProjector();  // stop()
  BusProjector(const BusProjector&) = delete;
  BusProjector& operator=(const BusProjector&) = delete;

  // Opens the live copies and the dead-letter table, then consumes on its own thread. If
  // another process writes these read models (a shared database: it holds their claims),
  // stands by instead (state "standby": no consumer of the bus, reads unavailable) and takes
  // over once that process is gone, as a restart would (from what the bus acknowledged).
  Result<void> start();
  // Stops after the batch in hand. Idempotent.
  void stop();

  BusProjectorStatus status() const;
  // The read models it feeds, in a fixed order, with the highest position each applied
  // (any thread; empty before start()).
  std::vector<BusProjection> projections() const EXCLUDES(mu_);
  // Per read model it feeds, in the same order: since start, the append-to-commit lag of
  // each event it applied to that read model (buckets of es::kLagBucketsMs, count, sum), for
  // /metrics' orderflow_projection_lag_seconds; window and percentiles are status()'s, of
  // the last kLagWindow events over all read models. Any thread; empty before start().
  std::vector<es::ProjectionLag> lags() const EXCLUDES(mu_);

  // Calls done(stand) once what `target` waits for (see ReadTarget) is applied, at once if
  // it is, or when `deadline` passes or the projector stops (stand.applied false); done
  // with an error when the store or the read-model database cannot be read, not_found for
  // a projection it does not feed. Pending reads are looked at after each fetch (at least
  // every fetch_wait) and at their deadline; `done` runs on the caller's thread or the
  // projector's, exactly once, and must not block.
  void when_readable(ReadTarget target, std::chrono::steady_clock::time_point deadline,
                     std::function<void(Result<ReadStand>)> done) EXCLUDES(mu_);
  const BusProjectorOptions& options() const { return options_; }

  // The dead letters held and retried, oldest first (any thread: read from the database).
  Result<std::vector<BusDeadLetter>> dead_letters() override;
  // Retries the dead letter `id` (see the promises above) on the projector's thread, then
  // answers `done` from it: not_found for no such dead letter, invalid_state for one
  // retried already, unavailable while the projector is stopped or without a store, or the
  // error of a read or an apply (the stream then stays held; events applied before it stay).
  void redrive(std::string id, std::string actor, std::function<void(Result<Redriven>)> done) EXCLUDES(mu_) override;

 private:
  struct ReadWaiter {
    std::size_t copy;  // index in copies_
    std::optional<es::StreamId> stream;
    es::StreamVersion version = es::kNoStream;  // with `stream`: the version waited for
    es::Position position{0};                   // without: the position waited for
    std::chrono::steady_clock::time_point deadline;
    std::function<void(Result<ReadStand>)> done;
  };
  Result<bool> claim_all();
  Result<void> open_copies() EXCLUDES(mu_);
  Result<void> resume_copies() EXCLUDES(mu_);
  Result<void> raise_positions() EXCLUDES(mu_);
  Result<void> reclaim_if_unavailable(const Error& error);
  bool stand_by() EXCLUDES(mu_);
  Result<ReadStand> stand(const ReadWaiter& w) EXCLUDES(mu_);
  // Answers the pending reads that are applied, past their deadline, or all (`all`).
  void answer_readers(bool all) EXCLUDES(mu_);
  Result<es::StreamVersion> version_at(const es::StreamId& stream, es::Position position);
  Result<Redriven> redrive_now(const RedriveQueue::Request& request);
  Result<std::vector<es::RecordedEvent>> apply_stored(std::span<const es::RecordedEvent> stored);
  std::optional<es::EventFilter> dropped_events(const std::string& topic) const;
  Result<void> recover_dropped();
  void refresh_backlog();
  void loop();
  Result<void> consume();
  Result<std::vector<std::size_t>> apply(std::span<const es::RecordedEvent> events);
  Result<std::vector<std::size_t>> apply_copy(std::size_t i, std::span<const es::RecordedEvent> events) EXCLUDES(mu_);
  Result<void> hold(const es::RecordedEvent& e, const std::string& reason);
  void record_lag(std::span<const es::RecordedEvent> events) EXCLUDES(mu_);
  void set_state(const char* state, std::optional<std::string> error) EXCLUDES(mu_);

  projections::ReadSide& read_;
  es::BusConsumer& bus_;
  BusProjectorOptions options_;
  std::vector<std::pair<projections::TableProjection*, std::unique_ptr<es::ReadModel>>> copies_;
  BusDeadLetterTables tables_;
  std::set<es::StreamId> held_streams_;  // streams behind a dead letter (the loop's thread only)
  // Topics whose messages the bus dropped unread, their events not yet read from the store
  // (the loop's thread only).
  std::set<std::string> dropped_;
  // Per category ("": every one), the last position of a read from the store for dropped
  // messages: every event of it at or below was applied then (or is held, and its stream will
  // be applied from the store when released), so the next read for it starts past it.
  // Forgotten when the copies are opened or resumed (another process may have written them).
  // The loop's thread only, but for open_copies, which runs before it.
  std::map<std::string, es::Position> recovered_through_;
  std::chrono::steady_clock::time_point backlog_asked_{};  // the loop's thread only
  // Early events (stream, version) and when they were first delivered early (the loop's thread only).
  std::map<std::pair<es::StreamId, es::StreamVersion>, std::chrono::steady_clock::time_point> early_since_;
  // Failed applies of events (stream, version) not yet applied nor dead-lettered (the loop's thread only).
  std::map<std::pair<es::StreamId, es::StreamVersion>, int> failures_;
  // The claims went to another process (reclaim_if_unavailable): the loop stands by.
  bool lost_claims_ = false;

  std::atomic<std::uint64_t> applied_{0}, dead_lettered_{0}, from_store_{0};
  std::atomic<std::size_t> held_{0};
  std::atomic<std::int64_t> backlog_{-1};  // -1: unknown
  std::atomic<es::Position> acked_position_{es::Position{0}};  // status().position
  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  bool running_ GUARDED_BY(mu_) = false;  // between start() and stop()
  bool fed_ GUARDED_BY(mu_) = false;     // copies_ opened (set once; not standing by)
  std::string state_ GUARDED_BY(mu_) = "stopped";
  std::optional<std::string> last_error_ GUARDED_BY(mu_);
  RecentLatencies lag_ GUARDED_BY(mu_){kLagWindow};
  double last_lag_ms_ GUARDED_BY(mu_) = 0;
  RedriveQueue redrives_;  // open between start() and stop()
  std::vector<es::Position> positions_ GUARDED_BY(mu_);  // per copies_: the highest position applied
  std::vector<es::ProjectionLag> lag_totals_ GUARDED_BY(mu_);  // per copies_: see lags()
  std::vector<ReadWaiter> readers_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace orderflow::app::bus_projector
