// The relay: the log published to a message bus, without a second write (the log is the
// outbox). A subscription (es/subscription.h) tails the log by position, never skipping;
// each batch is published (es/bus.h) and only once the bus has acknowledged all of it is
// the relay's checkpoint ("relay", in the store's CheckpointStore) moved past it. After a
// crash or a failed publish the relay resumes from that checkpoint, so nothing is lost and
// what the bus receives twice is bounded by one batch (the bus's dedup by event id takes
// care of it: es/bus.h).
//
// Every event becomes one message on `<prefix>.<category>` (orderflow.events.order, …),
// keyed by its stream id, its body the event JSON of docs/api.md §8, with the headers of
// message() below. The relay reads the whole log (no filter), so every message names the
// event before it in the log (orderflow-previous-position): within a batch the one before
// it; for a batch's first, the last one the relay published, or at its start the relay's
// checkpoint (the subscription's checkpoint is the last position it read, and without a
// filter that is the last event it published).
//
// While the bus is down the log keeps growing and the relay's lag with it; it publishes
// again after a back-off (100 ms doubling to 5 s) until the bus answers, then catches up.
// With a leader lease (several processes on one PostgreSQL store) only the holder relays;
// the others stand by and one takes over within about kLeaseCheck of the holder's death,
// from its checkpoint.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/mutex.h"
#include "core/stoppable_thread.h"
#include "es/bus.h"
#include "es/leader_lease.h"
#include "es/subscription.h"

namespace orderflow::app {
class PersonalData;
}

namespace orderflow::app::relay {

struct RelayOptions {
  std::string bus;  // the bus URL, as /api/v1/admin/relay shows it
  std::string topic_prefix = "orderflow.events";
  std::size_t batch_size = 1000;
  // Reveals the sealed personal data of each message's body, as reads show it (plaintext,
  // or "[erased]"); null: bodies go out as stored. Must outlive the relay.
  PersonalData* personal_data = nullptr;
};

// `publishing` (caught up or catching up), `retrying` (the last publish failed: waiting to
// publish again), `standby` (another process holds the relay lease), `stopped`.
struct RelayStatus {
  std::string bus;
  std::string state;
  es::Position position{0};  // the last position the bus acknowledged
  std::uint64_t published = 0;  // events the bus acknowledged since this process started
  std::optional<std::string> last_error;  // of the last failed publish, until one succeeds
};

// The message of one event: topic `<prefix>.<category>`, key the stream id, id the event
// id, body the event JSON, headers orderflow-event-id, orderflow-stream-id, orderflow-type,
// orderflow-version, orderflow-position, orderflow-schema-version and, when the metadata
// has them, orderflow-correlation-id, orderflow-causation-id and traceparent. With
// `previous`: orderflow-previous-position, the position of the event before it in the log
// (0: it is the first), so a consumer of every topic can put the log back in order across
// streams without assuming positions are contiguous (app/saga/bus_saga_feed.h).
es::BusMessage message(const es::RecordedEvent& e, const std::string& topic_prefix,
                       std::optional<es::Position> previous = std::nullopt);

// The header that carries the position of the previous event in the log.
inline constexpr const char* kPreviousPositionHeader = "orderflow-previous-position";

class Relay {
 public:
  static constexpr auto kLeaseCheck = std::chrono::milliseconds(500);

  // `lease` may be null (relay whenever started); `on_lead(true/false)` is told, from the
  // relay's thread, when this process starts or stops relaying. All must outlive the relay.
  Relay(es::EventStore& store, es::CheckpointStore& checkpoints, es::BusPublisher& bus, RelayOptions options,
        es::LeaderLease* lease = nullptr, std::function<void(bool)> on_lead = {});
  ~Relay();  // stop()
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Starts the relay's thread; it never fails: an unreachable bus or store is retried.
  void start();
  // Stops after the batch in hand (its checkpoint is saved if the bus acknowledged it);
  // releases the lease. Idempotent.
  void stop();

  RelayStatus status() const;

 private:
  void loop();
  Result<void> on_batch(std::span<const es::RecordedEvent> events);

  es::EventStore& store_;
  es::CheckpointStore& checkpoints_;
  es::BusPublisher& bus_;
  RelayOptions options_;
  es::LeaderLease* lease_;
  std::function<void(bool)> on_lead_;

  std::unique_ptr<es::Subscription> subscription_;
  std::atomic<es::Position> position_{es::Position{0}};
  std::atomic<std::uint64_t> published_{0};
  std::atomic<bool> leading_{false};
  std::atomic<bool> failed_{false};  // the last publish failed
  // The position of the last event published (0: none before), for the next message's
  // orderflow-previous-position. Set by the loop before the subscription starts, then by
  // the subscription's thread alone.
  std::atomic<es::Position> previous_{es::Position{0}};
  mutable Mutex mu_;
  std::optional<std::string> last_error_ GUARDED_BY(mu_);
  StoppableThread thread_;
};

}  // namespace orderflow::app::relay
