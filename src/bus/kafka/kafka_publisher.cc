#include "bus/kafka/kafka_publisher.h"

#include <librdkafka/rdkafka.h>

#include "bus/kafka/kafka_error.h"
#include "core/log.h"

namespace orderflow::bus::kafka {

KafkaPublisher::KafkaPublisher(KafkaOptions options) : options_(std::move(options)) {}

KafkaPublisher::~KafkaPublisher() {
  if (rk_) rd_kafka_destroy(rk_);
}

Result<void> KafkaPublisher::create() {
  std::string brokers;
  for (const auto& b : options_.brokers) brokers.append(brokers.empty() ? "" : ",").append(b);
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  const std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", brokers},
      {"enable.idempotence", "true"},
      {"message.timeout.ms", std::to_string(options_.delivery_timeout_ms)},
      {"partitioner", "murmur2_random"},  // as the Java client: the same key, the same partition
      {"linger.ms", "5"},
  };
  for (const auto& [name, value] : settings)
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return kafka_error(std::string("setting ") + name, err);
    }
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* self) {
    static_cast<KafkaPublisher*>(self)->delivered(reinterpret_cast<std::uintptr_t>(m->_private),
                                                  m->err ? rd_kafka_err2str(m->err) : nullptr);
  });
  // librdkafka's own lines (a broker unreachable, ...) at debug level: the relay reports
  // what fails.
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char* facility, const char* text) {
    log::debug("kafka", text, {{"facility", facility}});
  });
  rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t*, int, const char* reason, void*) {
    log::debug("kafka", reason);
  });
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);  // takes conf on success
  if (!rk_) {
    rd_kafka_conf_destroy(conf);
    return kafka_error("creating the producer", err);
  }
  return {};
}

void KafkaPublisher::delivered(std::uint64_t batch, const char* error) {
  MutexLock lk(mu_);
  if (batch != batch_ || !error) return;
  if (failed_++ == 0) first_error_ = error;
}

Result<void> KafkaPublisher::publish(std::span<const es::BusMessage> messages) {
  if (!rk_)
    if (auto created = create(); !created) return created;
  std::uint64_t batch;
  {
    MutexLock lk(mu_);
    batch = ++batch_;
    failed_ = 0;
    first_error_.clear();
  }
  for (const auto& m : messages) {
    rd_kafka_headers_t* headers = rd_kafka_headers_new(m.headers.size());
    for (const auto& [name, value] : m.headers)
      rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(m.topic.c_str()),
                                  RD_KAFKA_V_KEY(m.key.data(), m.key.size()),
                                  RD_KAFKA_V_VALUE(const_cast<char*>(m.body.data()), m.body.size()),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                                  RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(batch))),
                                  RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(rk_, 10);  // the local queue is full: let deliveries drain it
    if (e) {
      rd_kafka_headers_destroy(headers);  // taken by the producer only on success
      return kafka_error("producing to " + m.topic, rd_kafka_err2str(e));
    }
  }
  // Every message is delivered or has failed within message.timeout.ms.
  rd_kafka_flush(rk_, options_.delivery_timeout_ms + 5000);
  char fatal[512];
  if (rd_kafka_fatal_error(rk_, fatal, sizeof fatal)) {
    rd_kafka_destroy(rk_);  // an idempotent producer that cannot go on: the next publish makes a new one
    rk_ = nullptr;
    return kafka_error("the producer failed", fatal);
  }
  MutexLock lk(mu_);
  if (rd_kafka_outq_len(rk_) > 0)
    return kafka_error("publishing", std::to_string(rd_kafka_outq_len(rk_)) + " messages still unacknowledged");
  if (failed_ > 0)
    return kafka_error("publishing", std::to_string(failed_) + " of " + std::to_string(messages.size()) +
                                         " messages not delivered: " + first_error_);
  return {};
}

}  // namespace orderflow::bus::kafka
