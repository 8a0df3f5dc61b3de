// The relay's bus on NATS JetStream (libnats). Every message is published with its event
// id as `Nats-Msg-Id`, so JetStream stores it once however often it is sent within the
// stream's duplicate window (2 minutes by default); past that window a re-sent message is
// stored again. Acknowledged = stored by the stream (on a replicated stream: by a quorum).
//
// Connects on the first publish and reconnects by itself (every 250 ms, without end);
// creates the stream if it does not exist, with the subjects `<prefix>.>`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "es/bus.h"

namespace orderflow::bus::nats {

struct NatsOptions {
  std::vector<std::string> servers;  // "HOST:PORT"
  std::string stream = "ORDERFLOW_EVENTS";
  std::string subject_prefix = "orderflow.events";
  int replicas = 1;  // of a stream this publisher creates
  // How long a batch waits for its acknowledgments before it is an error.
  int ack_timeout_ms = 5000;
};

class NatsPublisher final : public es::BusPublisher {
 public:
  explicit NatsPublisher(NatsOptions options);
  ~NatsPublisher() override;
  NatsPublisher(const NatsPublisher&) = delete;
  NatsPublisher& operator=(const NatsPublisher&) = delete;

  Result<void> publish(std::span<const es::BusMessage> messages) override;

 private:
  struct Connection;
  Result<void> connect();

  NatsOptions options_;
  std::unique_ptr<Connection> conn_;
};

}  // namespace orderflow::bus::nats
