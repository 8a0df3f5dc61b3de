// A Kafka consumer group on the relay's topics (es::BusConsumer; librdkafka's C API):
// subscribes to every topic `^<prefix>\..*`, partitions assigned by the group, offsets
// committed by hand. A partition's messages come in order (the relay keys by stream id,
// so a stream's are on one partition); partitions are independent.
//
// ack() commits, per partition, the offset below which everything fetched was acknowledged
// (or dead-lettered): after a crash or a rebalance what follows is delivered again.
// retry() seeks the partition back to the message (Kafka has no per-message redelivery):
// it and every later message of its partition come again at once; `attempt` is always 1.
// Dead letters are produced to `<dead_letter_prefix>.<group>` (key the original's, its
// headers plus orderflow-dead-letter-reason and orderflow-dead-letter-topic) and flushed
// before the original is acknowledged.
//
// Messages of a partition the bus dropped (its retention) before the group read them are
// told by dropped(), for the consumer to read their events from the store: the partition was
// assigned from the group's committed offset (0 for a new group) and its first message came
// past it, or a message came past the one after the last fetched.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "es/bus.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_partition_list_s rd_kafka_topic_partition_list_t;

namespace orderflow::bus::kafka {

// How long a group waits for a member that stopped heartbeating (a killed process) before
// its partitions go to the others (librdkafka's heartbeats run on its own thread, every 3 s,
// so a busy member is not taken for dead). librdkafka's default is 45 s.
inline constexpr std::chrono::seconds kDefaultSessionTimeout{10};

struct KafkaConsumerOptions {
  std::vector<std::string> brokers;  // "HOST:PORT", the bootstrap servers
  std::string topic_prefix = "orderflow.events";
  std::string group = "orderflow-projector";
  std::string dead_letter_prefix = "orderflow.dead-letters";
  std::chrono::milliseconds session_timeout = kDefaultSessionTimeout;
};

class KafkaConsumer final : public es::BusConsumer {
 public:
  explicit KafkaConsumer(KafkaConsumerOptions options);
  ~KafkaConsumer() override;
  KafkaConsumer(const KafkaConsumer&) = delete;
  KafkaConsumer& operator=(const KafkaConsumer&) = delete;

  Result<std::vector<es::BusDelivery>> fetch(std::size_t max, std::chrono::milliseconds wait) override;
  Result<void> ack(std::span<const std::uint64_t> tags) override;
  Result<void> retry(std::uint64_t tag, std::chrono::milliseconds delay) override;
  Result<void> dead_letter(std::uint64_t tag, const std::string& reason) override;
  // Over every partition of its topics, assigned to it now or not: the high watermark (as
  // the last fetch saw it; asked of the broker for a partition not assigned to it) minus the
  // group's committed offset (asked of the group coordinator; the low watermark for a
  // partition without one).
  Result<std::uint64_t> backlog() override;
  std::vector<std::string> dropped() override;
  // Closes the consumer (it leaves the group) and forgets what it fetched; the next fetch
  // creates it again.
  void leave() override;

  const KafkaConsumerOptions& options() const { return options_; }

 private:
  struct Fetched {
    std::string topic;
    int partition;
    std::int64_t offset;
    es::BusDelivery delivery;  // for dead_letter()
    std::string key;
  };
  using Partition = std::pair<std::string, int>;
  // Per partition: offsets fetched and not yet acknowledged, and the offset after the last fetched.
  struct Progress {
    std::set<std::int64_t> outstanding;
    std::int64_t next = 0;
    std::int64_t committed = -1;
    // The offset its next message should have: where it was assigned from, then one past the
    // last fetched (none: not known). A message past it tells of offsets the bus dropped.
    std::optional<std::int64_t> expected;
  };
  Result<void> create();
  void rebalanced(rd_kafka_t* rk, int err, rd_kafka_topic_partition_list_t* partitions);

  KafkaConsumerOptions options_;
  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_t* producer_ = nullptr;  // of dead letters
  std::unordered_map<std::uint64_t, Fetched> held_;
  std::map<Partition, Progress> progress_;
  std::set<std::string> dropped_;  // topics, since dropped() was last asked
  // The partitions of its topics, as backlog() last asked the cluster, and when.
  static constexpr std::chrono::seconds kTopicsEvery{10};
  std::vector<Partition> topics_;
  std::chrono::steady_clock::time_point topics_asked_{};
  std::uint64_t next_tag_ = 1;
  std::string last_error_;  // from librdkafka's error callback, since the last message
};

}  // namespace orderflow::bus::kafka
