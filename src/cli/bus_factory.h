// Opens the bus a command line asks for (--bus): NATS JetStream with nats://HOST:PORT[,…],
// Kafka with kafka://HOST:PORT[,…] (the bootstrap servers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bus/kafka/kafka_consumer.h"
#include "core/result.h"
#include "es/bus.h"

namespace orderflow::cli {

struct BusSpec {
  std::string url;  // --bus; empty: no bus
  std::string topic_prefix = "orderflow.events";
  int replicas = 1;  // of the JetStream stream, when the relay creates it
  std::string consumer = "orderflow-projector";  // the JetStream durable consumer / Kafka consumer group of a bus-fed projector
  std::string saga_consumer = "orderflow-saga";  // the same, of a bus-fed saga
  // Kafka consumer groups: seconds a member that stopped heartbeating (a killed process)
  // keeps its partitions before the others get them.
  int session_timeout_s = static_cast<int>(bus::kafka::kDefaultSessionTimeout.count());
  // What the bus carries of personal data (docs/api.md §7): "revealed" (plaintext, as reads
  // show it) or "sealed" (as stored: an erasure reaches every copy on the bus, and the read
  // models fed from it, which show it revealed as every read model does).
  std::string personal_data = "revealed";
};

enum class BusKind { nats, kafka };

struct BusUrl {
  BusKind kind;
  std::vector<std::string> servers;  // "HOST:PORT", as given
};

// A malformed URL or an unknown scheme is invalid_argument, one sentence naming the URL.
Result<BusUrl> parse_bus_url(const std::string& url);

// The bus's publisher; it connects on its first publish, so an unreachable bus is no
// error here.
std::unique_ptr<es::BusPublisher> open_bus(const BusUrl& url, const BusSpec& spec);

// A durable consumer of the relay's topics for a bus-fed projector (a JetStream durable
// consumer, a Kafka consumer group, named spec.consumer); it connects on its first fetch.
std::unique_ptr<es::BusConsumer> open_bus_consumer(const BusUrl& url, const BusSpec& spec);

}  // namespace orderflow::cli
