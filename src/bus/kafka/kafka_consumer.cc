#include "bus/kafka/kafka_consumer.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>

#include "bus/kafka/kafka_error.h"
#include "core/log.h"

namespace orderflow::bus::kafka {

namespace {

// `^<prefix>\..*`: the regular expression librdkafka subscribes by.
std::string topic_pattern(const std::string& prefix) {
  std::string out = "^";
  for (char c : prefix) {
    if (c == '.') out += '\\';
    out += c;
  }
  return out + "\\..*";
}

}  // namespace

KafkaConsumer::KafkaConsumer(KafkaConsumerOptions options) : options_(std::move(options)) {}

KafkaConsumer::~KafkaConsumer() {
  if (consumer_) {
    rd_kafka_consumer_close(consumer_);
    rd_kafka_destroy(consumer_);
  }
  if (producer_) rd_kafka_destroy(producer_);
}

Result<void> KafkaConsumer::create() {
  std::string brokers;
  for (const auto& b : options_.brokers) brokers.append(brokers.empty() ? "" : ",").append(b);
  char err[512];
  auto make = [&](rd_kafka_type_t type, std::initializer_list<std::pair<const char*, std::string>> settings,
                  const char* what) -> Result<rd_kafka_t*> {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [name, value] : settings)
      if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return kafka_error(std::string("setting ") + name, err);
      }
    rd_kafka_conf_set_opaque(conf, this);
    if (type == RD_KAFKA_CONSUMER)
      rd_kafka_conf_set_rebalance_cb(conf, [](rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                              rd_kafka_topic_partition_list_t* partitions, void* self) {
        static_cast<KafkaConsumer*>(self)->rebalanced(rk, err, partitions);  // called from poll: the caller's thread
      });
    rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char* facility, const char* text) {
      log::debug("kafka", text, {{"facility", facility}});
    });
    rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t*, int, const char* reason, void* self) {
      static_cast<KafkaConsumer*>(self)->last_error_ = reason;  // called from poll: the caller's thread
    });
    rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);  // takes conf on success
    if (!rk) {
      rd_kafka_conf_destroy(conf);
      return kafka_error(what, err);
    }
    return rk;
  };
  OF_ASSIGN_OR_RETURN(auto consumer,
                      make(RD_KAFKA_CONSUMER,
                           {{"bootstrap.servers", brokers},
                            {"group.id", options_.group},
                            {"enable.auto.commit", "false"},
                            {"auto.offset.reset", "earliest"},
                            {"session.timeout.ms", std::to_string(options_.session_timeout.count())},
                            {"topic.metadata.refresh.interval.ms", "1000"},  // new topics of the pattern soon
                            {"fetch.wait.max.ms", "10"}},  // the broker answers a fetch at once (500 ms by default)
                           "creating the consumer"));
  consumer_ = consumer;
  rd_kafka_poll_set_consumer(consumer_);
  if (!producer_) {
    OF_ASSIGN_OR_RETURN(auto producer,
                        make(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}, {"enable.idempotence", "true"}},
                             "creating the dead-letter producer"));
    producer_ = producer;
  }
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic_pattern(options_.topic_prefix).c_str(), RD_KAFKA_PARTITION_UA);
  const auto subscribed = rd_kafka_subscribe(consumer_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (subscribed) return kafka_error("subscribing", rd_kafka_err2str(subscribed));
  return {};
}

void KafkaConsumer::leave() {
  if (!consumer_) return;
  rd_kafka_consumer_close(consumer_);  // revokes its partitions (rebalanced) and leaves the group
  rd_kafka_destroy(consumer_);
  consumer_ = nullptr;
  held_.clear();
  progress_.clear();
}

Result<std::vector<es::BusDelivery>> KafkaConsumer::fetch(std::size_t max, std::chrono::milliseconds wait) {
  if (!consumer_) OF_RETURN_IF_ERROR(create());
  std::vector<es::BusDelivery> out;
  for (int timeout = static_cast<int>(wait.count()); out.size() < max; timeout = 0) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, timeout);
    if (!m) break;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) last_error_ = rd_kafka_message_errstr(m);
      rd_kafka_message_destroy(m);
      continue;
    }
    last_error_.clear();
    Fetched f{rd_kafka_topic_name(m->rkt), m->partition, m->offset, {}, {}};
    if (m->key) f.key.assign(static_cast<const char*>(m->key), m->key_len);
    es::BusDelivery& d = f.delivery;
    d.topic = f.topic;
    if (m->payload) d.body.assign(static_cast<const char*>(m->payload), m->len);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
        d.headers.emplace_back(name, std::string(static_cast<const char*>(value), size));
    }
    d.tag = next_tag_++;
    d.id = f.topic + "/" + std::to_string(f.partition) + "@" + std::to_string(f.offset);
    auto& progress = progress_[{f.topic, f.partition}];
    if (progress.expected && f.offset > *progress.expected) {
      // Offsets it has not had: the bus's retention dropped them (librdkafka then starts
      // from the first offset the partition holds, auto.offset.reset).
      dropped_.insert(f.topic);
      log::warn("kafka",
                "the bus dropped messages this consumer group had not read: their events are read from the store",
                {{"topic", f.topic},
                 {"partition", std::to_string(f.partition)},
                 {"group", options_.group},
                 {"from_offset", std::to_string(*progress.expected)},
                 {"to_offset", std::to_string(f.offset)}});
    }
    progress.expected = f.offset + 1;
    progress.outstanding.insert(f.offset);
    progress.next = std::max(progress.next, f.offset + 1);
    rd_kafka_message_destroy(m);
    out.push_back(d);
    held_.emplace(d.tag, std::move(f));
  }
  // An unreachable cluster answers nothing: say so rather than "no messages".
  if (out.empty() && !last_error_.empty()) return kafka_error("fetching", last_error_);
  return out;
}

// librdkafka's default (eager) assignment, knowing where each partition assigned starts: the
// group's committed offset, or 0 for a partition the group has none of.
void KafkaConsumer::rebalanced(rd_kafka_t* rk, int err, rd_kafka_topic_partition_list_t* partitions) {
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    const bool known = rd_kafka_committed(rk, partitions, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < partitions->cnt; ++i) {
      auto& p = partitions->elems[i];
      auto& expected = progress_[{p.topic, p.partition}].expected;
      if (known && !p.err) expected = std::max<std::int64_t>(p.offset, 0);
      else expected.reset();
      p.offset = RD_KAFKA_OFFSET_INVALID;  // from the committed offset, as without this callback
    }
    rd_kafka_assign(rk, partitions);
  } else {
    for (int i = 0; i < partitions->cnt; ++i)
      progress_[{partitions->elems[i].topic, partitions->elems[i].partition}].expected.reset();
    rd_kafka_assign(rk, nullptr);
  }
}

std::vector<std::string> KafkaConsumer::dropped() {
  std::vector<std::string> out(dropped_.begin(), dropped_.end());
  dropped_.clear();
  return out;
}

Result<void> KafkaConsumer::ack(std::span<const std::uint64_t> tags) {
  std::set<Partition> touched;
  for (auto tag : tags) {
    auto it = held_.find(tag);
    if (it == held_.end()) continue;
    Partition p{it->second.topic, it->second.partition};
    progress_[p].outstanding.erase(it->second.offset);
    touched.insert(p);
    held_.erase(it);
  }
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(static_cast<int>(touched.size()));
  std::vector<std::pair<Partition, std::int64_t>> committing;
  for (const auto& p : touched) {
    auto& progress = progress_[p];
    const auto commit = progress.outstanding.empty() ? progress.next : *progress.outstanding.begin();
    if (commit <= progress.committed) continue;
    rd_kafka_topic_partition_list_add(offsets, p.first.c_str(), p.second)->offset = commit;
    committing.emplace_back(p, commit);
  }
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (offsets->cnt > 0) err = rd_kafka_commit(consumer_, offsets, 0);
  rd_kafka_topic_partition_list_destroy(offsets);
  if (err) return kafka_error("committing offsets", rd_kafka_err2str(err));
  for (const auto& [p, commit] : committing) progress_[p].committed = commit;
  return {};
}

Result<void> KafkaConsumer::retry(std::uint64_t tag, std::chrono::milliseconds) {
  auto it = held_.find(tag);
  if (it == held_.end()) return {};
  const Partition p{it->second.topic, it->second.partition};
  const auto offset = it->second.offset;
  // It and every later message of the partition come again: forget what was fetched of them.
  auto& progress = progress_[p];
  progress.outstanding.erase(progress.outstanding.lower_bound(offset), progress.outstanding.end());
  progress.next = std::min(progress.next, offset);
  progress.expected = offset;
  std::erase_if(held_, [&](const auto& h) {
    return h.second.topic == p.first && h.second.partition == p.second && h.second.offset >= offset;
  });
  rd_kafka_topic_partition_list_t* seek = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(seek, p.first.c_str(), p.second)->offset = offset;
  rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_, seek, 5000);
  rd_kafka_topic_partition_list_destroy(seek);
  if (error) {
    const std::string what = rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
    return kafka_error("seeking back to redeliver", what);
  }
  return {};
}

Result<void> KafkaConsumer::dead_letter(std::uint64_t tag, const std::string& reason) {
  auto it = held_.find(tag);
  if (it == held_.end()) return {};
  const Fetched& f = it->second;
  const std::string topic = options_.dead_letter_prefix + "." + options_.group;
  rd_kafka_headers_t* headers = rd_kafka_headers_new(f.delivery.headers.size() + 2);
  for (const auto& [name, value] : f.delivery.headers)
    rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                        static_cast<ssize_t>(value.size()));
  rd_kafka_header_add(headers, "orderflow-dead-letter-reason", -1, reason.data(), static_cast<ssize_t>(reason.size()));
  rd_kafka_header_add(headers, "orderflow-dead-letter-topic", -1, f.topic.data(), static_cast<ssize_t>(f.topic.size()));
  const auto err = rd_kafka_producev(
      producer_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(f.key.data(), f.key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(f.delivery.body.data()), f.delivery.body.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
  if (err) {
    rd_kafka_headers_destroy(headers);
    return kafka_error("producing a dead letter to " + topic, rd_kafka_err2str(err));
  }
  if (const auto flushed = rd_kafka_flush(producer_, 10000); flushed)
    return kafka_error("producing a dead letter to " + topic, rd_kafka_err2str(flushed));
  const std::uint64_t tags[] = {tag};
  return ack(tags);
}

Result<std::uint64_t> KafkaConsumer::backlog() {
  if (!consumer_) OF_RETURN_IF_ERROR(create());
  // Every partition of the topics it subscribes to: those not assigned to it yet (a
  // rebalance in progress, a dead member's until its session times out) count too. The
  // list is asked of the cluster at most every kTopicsEvery (a round trip on the caller's
  // thread, the projector's).
  const auto now = std::chrono::steady_clock::now();
  if (topics_.empty() || now - topics_asked_ >= kTopicsEvery) {
    const rd_kafka_metadata_t* metadata = nullptr;
    if (const auto err = rd_kafka_metadata(consumer_, 1, nullptr, &metadata, 5000); err)
      return kafka_error("reading the topics", rd_kafka_err2str(err));
    const std::string prefix = options_.topic_prefix + ".";
    topics_.clear();
    for (int t = 0; t < metadata->topic_cnt; ++t)
      if (std::string_view(metadata->topics[t].topic).starts_with(prefix))
        for (int p = 0; p < metadata->topics[t].partition_cnt; ++p)
          topics_.emplace_back(metadata->topics[t].topic, metadata->topics[t].partitions[p].id);
    rd_kafka_metadata_destroy(metadata);
    topics_asked_ = now;
  }
  rd_kafka_topic_partition_list_t* partitions = rd_kafka_topic_partition_list_new(static_cast<int>(topics_.size()));
  for (const auto& [topic, partition] : topics_)
    rd_kafka_topic_partition_list_add(partitions, topic.c_str(), partition);
  rd_kafka_topic_partition_list_t* assigned = nullptr;
  auto err = rd_kafka_assignment(consumer_, &assigned);
  if (!err && partitions->cnt > 0) err = rd_kafka_committed(consumer_, partitions, 5000);
  std::uint64_t total = 0;
  for (int i = 0; !err && i < partitions->cnt; ++i) {
    const auto& p = partitions->elems[i];
    std::int64_t low = -1, high = -1;
    // An assigned partition's watermarks as its last fetch saw them; another's asked.
    const bool fetched = rd_kafka_topic_partition_list_find(assigned, p.topic, p.partition) &&
                         !rd_kafka_get_watermark_offsets(consumer_, p.topic, p.partition, &low, &high) && high >= 0;
    if (!fetched) err = rd_kafka_query_watermark_offsets(consumer_, p.topic, p.partition, &low, &high, 5000);
    if (err || high < 0) continue;
    const std::int64_t from = p.offset >= 0 ? p.offset : std::max<std::int64_t>(low, 0);
    total += static_cast<std::uint64_t>(std::max<std::int64_t>(0, high - from));
  }
  if (assigned) rd_kafka_topic_partition_list_destroy(assigned);
  rd_kafka_topic_partition_list_destroy(partitions);
  if (err) return kafka_error("counting the messages not acknowledged", rd_kafka_err2str(err));
  return total;
}

}  // namespace orderflow::bus::kafka
