#include "cli/bus_factory.h"

#include <charconv>

#include "bus/kafka/kafka_consumer.h"
#include "bus/kafka/kafka_publisher.h"
#include "bus/nats/nats_consumer.h"
#include "bus/nats/nats_publisher.h"

namespace orderflow::cli {

namespace {

// HOST:PORT, HOST a name or an address ([…] for IPv6), PORT 1–65535.
bool is_host_port(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  auto host = s.substr(0, colon), port = s.substr(colon + 1);
  if (host.front() == '[' ? host.back() != ']' || host.size() < 3 : host.find_first_of("[]:/@?#") != host.npos)
    return false;
  int n = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  return ec == std::errc() && end == port.data() + port.size() && n >= 1 && n <= 65535;
}

}  // namespace

Result<BusUrl> parse_bus_url(const std::string& url) {
  BusUrl out;
  std::string_view rest;
  if (url.starts_with("nats://")) {
    out.kind = BusKind::nats;
    rest = std::string_view(url).substr(7);
  } else if (url.starts_with("kafka://")) {
    out.kind = BusKind::kafka;
    rest = std::string_view(url).substr(8);
  } else {
    return fail(Errc::invalid_argument, "--bus takes nats://HOST:PORT[,HOST:PORT…] or kafka://HOST:PORT[,…], not " + url);
  }
  for (std::size_t from = 0; from <= rest.size();) {
    auto to = std::min(rest.find(',', from), rest.size());
    auto server = rest.substr(from, to - from);
    if (!is_host_port(server))
      return fail(Errc::invalid_argument,
                  "--bus " + url + " is malformed: every server must be HOST:PORT (port 1-65535), not \"" +
                      std::string(server) + "\"");
    out.servers.emplace_back(server);
    from = to + 1;
  }
  return out;
}

std::unique_ptr<es::BusPublisher> open_bus(const BusUrl& url, const BusSpec& spec) {
  switch (url.kind) {
    case BusKind::nats:
      return std::make_unique<bus::nats::NatsPublisher>(bus::nats::NatsOptions{
          .servers = url.servers, .subject_prefix = spec.topic_prefix, .replicas = spec.replicas});
    case BusKind::kafka:
      return std::make_unique<bus::kafka::KafkaPublisher>(bus::kafka::KafkaOptions{.brokers = url.servers});
  }
  return nullptr;
}

std::unique_ptr<es::BusConsumer> open_bus_consumer(const BusUrl& url, const BusSpec& spec) {
  switch (url.kind) {
    case BusKind::nats:
      return std::make_unique<bus::nats::NatsConsumer>(bus::nats::NatsConsumerOptions{
          .servers = url.servers, .subject_prefix = spec.topic_prefix, .durable = spec.consumer,
          .replicas = spec.replicas});
    case BusKind::kafka:
      return std::make_unique<bus::kafka::KafkaConsumer>(
          bus::kafka::KafkaConsumerOptions{.brokers = url.servers,
                                           .topic_prefix = spec.topic_prefix,
                                           .group = spec.consumer,
                                           .session_timeout = std::chrono::seconds(spec.session_timeout_s)});
  }
  return nullptr;
}

}  // namespace orderflow::cli
