// The relay's bus on Kafka (librdkafka). An idempotent producer (`enable.idempotence`:
// acks from all in-sync replicas, the broker drops a producer's retried batches it already
// wrote, a partition's order kept through retries); the key is the stream id, so a
// stream's events go to one partition, in order. What idempotence does not cover: a
// batch the relay publishes again after an error it could not resolve (a delivery timed
// out, the process died before saving its checkpoint) is written again, so consumers
// de-duplicate by (stream id, version), both in the headers.
//
// Creates its producer on the first publish; librdkafka reconnects by itself. A message
// not acknowledged within `delivery_timeout_ms` fails its batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/mutex.h"
#include "es/bus.h"

struct rd_kafka_s;

namespace orderflow::bus::kafka {

struct KafkaOptions {
  std::vector<std::string> brokers;  // "HOST:PORT", the bootstrap servers
  int delivery_timeout_ms = 10000;
};

class KafkaPublisher final : public es::BusPublisher {
 public:
  explicit KafkaPublisher(KafkaOptions options);
  ~KafkaPublisher() override;
  KafkaPublisher(const KafkaPublisher&) = delete;
  KafkaPublisher& operator=(const KafkaPublisher&) = delete;

  Result<void> publish(std::span<const es::BusMessage> messages) override;

  // Told by librdkafka (on a thread of publish()'s) for each message's delivery.
  void delivered(std::uint64_t batch, const char* error);

 private:
  Result<void> create();

  KafkaOptions options_;
  rd_kafka_s* rk_ = nullptr;
  Mutex mu_;
  std::uint64_t batch_ GUARDED_BY(mu_) = 0;  // the batch in flight; reports of older ones are ignored
  std::size_t failed_ GUARDED_BY(mu_) = 0;
  std::string first_error_ GUARDED_BY(mu_);
};

}  // namespace orderflow::bus::kafka
