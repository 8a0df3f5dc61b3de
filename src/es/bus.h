// A message bus the log is relayed to (NATS JetStream, Kafka). Transport-neutral: the
// adapters live in src/bus/, the relay that feeds them in app/relay/.
#pragma once

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

}  // namespace orderflow::es
