// A JetStream durable pull consumer on the relay's stream (es::BusConsumer): explicit acks
// (a batch's sent together, then one flush: answered = the server has them),
// so what was fetched and not acknowledged is delivered again (after `ack_wait`, or when
// retried); delivered in stream order, which is the log's order (the relay publishes it so).
// Dead letters go to `<dead_letter_prefix>.<durable>` in the stream `<stream>_DEAD_LETTERS`
// (created if missing), with the original headers plus orderflow-dead-letter-reason and
// orderflow-dead-letter-subject.
//
// Connects on the first fetch and reconnects by itself; creates the stream (as the relay
// would) and the durable consumer if they do not exist.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "es/bus.h"

namespace orderflow::bus::nats {

struct NatsConsumerOptions {
  std::vector<std::string> servers;  // "HOST:PORT"
  std::string stream = "ORDERFLOW_EVENTS";
  std::string subject_prefix = "orderflow.events";
  std::string durable = "orderflow-projector";
  std::string dead_letter_prefix = "orderflow.dead-letters";
  int replicas = 1;  // of the streams this consumer creates
  // A message fetched and neither acknowledged nor retried is delivered again after this.
  std::chrono::milliseconds ack_wait{30000};
};

class NatsConsumer final : public es::BusConsumer {
 public:
  explicit NatsConsumer(NatsConsumerOptions options);
  ~NatsConsumer() override;
  NatsConsumer(const NatsConsumer&) = delete;
  NatsConsumer& operator=(const NatsConsumer&) = delete;

  Result<std::vector<es::BusDelivery>> fetch(std::size_t max, std::chrono::milliseconds wait) override;
  Result<void> ack(std::span<const std::uint64_t> tags) override;
  Result<void> retry(std::uint64_t tag, std::chrono::milliseconds delay) override;
  Result<void> dead_letter(std::uint64_t tag, const std::string& reason) override;
  // The durable consumer's NumPending + NumAckPending (one request to the server).
  Result<std::uint64_t> backlog() override;
  // `<subject_prefix>.>` once messages of the stream were removed (its limits: max messages,
  // bytes or age; by hand or a limit per subject, from between others) before this consumer
  // had them: one stream holds every subject, and a gap in its sequence does not say whose
  // messages it held. Found when it connects (the stream's first message past the durable's
  // ack floor), when a fetch skips sequences (the stream's first message past the first
  // skipped, or a skipped one listed as removed from between), and for messages given back by
  // retry() that have not come back (the same, for them; looked at every 250 ms at most).
  std::vector<std::string> dropped() override;

 private:
  struct Connection;
  Result<void> connect();
  // Messages from sequence `from` on were removed before this consumer had them (dropped()).
  void note_removed(std::uint64_t from, const std::string& first);

  NatsConsumerOptions options_;
  std::unique_ptr<Connection> conn_;
  bool dropped_ = false;  // since dropped() was last asked
};

}  // namespace orderflow::bus::nats
