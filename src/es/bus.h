// A message bus the log is relayed to (NATS JetStream, Kafka). Transport-neutral: the
// adapters live in src/bus/, the relay that feeds them in app/relay/.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace orderflow::es {

// One event as the bus carries it.
struct BusMessage {
  std::string topic;  // the NATS subject or Kafka topic: one per category
  std::string key;    // the stream id: a stream's messages stay in order on one partition
  std::string id;     // the event id: what the bus de-duplicates by
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the event JSON (docs/api.md §8)
};

// Thread safety: one thread at a time calls publish().
class BusPublisher {
 public:
  virtual ~BusPublisher() = default;
  // Publishes `messages`, each stream's in the order given, and answers once the bus has
  // acknowledged every one as stored. An error (the bus is unreachable, an acknowledgment
  // timed out or was refused) means some may have been stored: the retry publishes the
  // same messages again, and what the bus then holds twice is the adapter's documented
  // duplicate (none inside JetStream's de-duplication window; Kafka: the same event id,
  // stream and version twice). A publisher reconnects by itself; the first publish
  // connects.
  virtual Result<void> publish(std::span<const BusMessage> messages) = 0;
};

// One message as a consumer receives it.
struct BusDelivery {
  std::string topic;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int attempt = 1;  // how often the bus has delivered it, this time included
  std::uint64_t tag = 0;  // names it to ack(), retry() and dead_letter(): this delivery's
  // What the bus names the message by, the same on every delivery of it (a tag is not):
  // JetStream's "STREAM:SEQUENCE", Kafka's "TOPIC/PARTITION@OFFSET".
  std::string id;
};

// A durable consumer of the relay's topics (PREFIX.*): what it acknowledged is never
// delivered again; what it fetched and did not acknowledge is delivered again (after a
// crash, or at once after retry()), each stream's messages in the order published.
// Thread safety: one thread at a time.
class BusConsumer {
 public:
  virtual ~BusConsumer() = default;
  // Up to `max` messages, waiting up to `wait` for the first; none is no error. The first
  // call connects (and creates the consumer); an unreachable bus is unavailable.
  virtual Result<std::vector<BusDelivery>> fetch(std::size_t max, std::chrono::milliseconds wait) = 0;
  // Done with: never delivered again.
  virtual Result<void> ack(std::span<const std::uint64_t> tags) = 0;
  // Delivered again after `delay`, its attempt counted.
  virtual Result<void> retry(std::uint64_t tag, std::chrono::milliseconds delay) = 0;
  // Published to the dead-letter topic with `reason` (header orderflow-dead-letter-reason),
  // then acknowledged.
  virtual Result<void> dead_letter(std::uint64_t tag, const std::string& reason) = 0;
  // Messages of its topics this consumer has not acknowledged yet (fetched ones included),
  // as the bus counts them now: JetStream's pending plus ack-pending of the durable
  // consumer; Kafka's high watermark minus the group's committed offset, summed over every
  // partition of its topics (assigned to it or not). May ask the bus (one round trip); unavailable if it can't.
  virtual Result<std::uint64_t> backlog() = 0;
  // The topics of which the bus dropped messages (its retention) before this consumer read
  // them, found since the last call: those messages' events are to be read again from the
  // event store. Kafka: a partition whose messages came past the offset expected (the
  // group's committed offset, 0 for a new group, then one past the last fetched).
  // JetStream: the wildcard PREFIX.> (one stream holds every topic; its first message past
  // the durable's ack floor, or a skipped sequence the stream no longer holds). Empty by
  // default.
  virtual std::vector<std::string> dropped() { return {}; }
  // Gives up its share of the bus's messages until its next fetch, which connects again
  // (a consumer whose process stops folding for a while): what it fetched and did not
  // acknowledge goes to the others. Kafka: leaves the group, whose other members get its
  // partitions at once (a member that only stops fetching keeps them until
  // max.poll.interval.ms, 5 min by default). Nothing by default (a JetStream pull consumer
  // gives nothing to one that does not fetch).
  virtual void leave() {}
};

}  // namespace orderflow::es
