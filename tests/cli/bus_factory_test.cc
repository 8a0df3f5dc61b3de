#include "cli/bus_factory.h"

#include <gtest/gtest.h>

#include "bus/kafka/kafka_consumer.h"

namespace orderflow::cli {
namespace {

TEST(BusUrl, NatsAndKafkaWithOneOrMoreServers) {
  auto nats = parse_bus_url("nats://127.0.0.1:4222,localhost:4223,[::1]:4224");
  ASSERT_TRUE(nats) << nats.error().message;
  EXPECT_EQ(nats->kind, BusKind::nats);
  EXPECT_EQ(nats->servers, (std::vector<std::string>{"127.0.0.1:4222", "localhost:4223", "[::1]:4224"}));
  auto kafka = parse_bus_url("kafka://broker-1:9092");
  ASSERT_TRUE(kafka) << kafka.error().message;
  EXPECT_EQ(kafka->kind, BusKind::kafka);
  EXPECT_EQ(kafka->servers, std::vector<std::string>{"broker-1:9092"});
}

TEST(BusUrl, MalformedOrUnknownIsOneSentenceNamingIt) {
  for (const char* bad : {"redis://h:1", "nats:/h:1", "h:4222", "nats://", "nats://h", "nats://h:0", "nats://h:65536",
                          "nats://h:42x", "nats://:4222", "nats://h:1,", "kafka://h:1/topic", "kafka://u@h:1",
                          "nats://[::1:4222"}) {
    auto parsed = parse_bus_url(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code, Errc::invalid_argument);
    EXPECT_NE(parsed.error().message.find(bad), std::string::npos) << parsed.error().message;
    EXPECT_EQ(parsed.error().message.find('\n'), std::string::npos);
  }
}

TEST(BusConsumer, AKafkaGroupsSessionTimeoutIsTheOneGiven) {
  const auto url = parse_bus_url("kafka://127.0.0.1:9");
  ASSERT_TRUE(url);
  auto consumer = open_bus_consumer(*url, {.consumer = "group", .session_timeout_s = 7});
  auto* kafka = dynamic_cast<bus::kafka::KafkaConsumer*>(consumer.get());
  ASSERT_NE(kafka, nullptr);
  EXPECT_EQ(kafka->options().session_timeout, std::chrono::seconds(7));
  EXPECT_EQ(kafka->options().group, "group");
}

}  // namespace
}  // namespace orderflow::cli
