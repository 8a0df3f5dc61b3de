// The JetStream consumer's fetch on a real nats-server: it waits for its first message
// (an idle consumer costs neither process a thing) and returns as soon as one comes, or
// with what is waiting, however many it asked for.
#include "bus/nats/nats_consumer.h"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <chrono>
#include <future>
#include <thread>

#include "bus/bus_under_test.h"
#include "cli/bus_factory.h"

namespace orderflow::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

es::BusMessage message(int i) {
  return {.topic = "orderflow.events.cart",
          .key = "cart-1",
          .id = "e-" + std::to_string(i),
          .headers = {},
          .body = "{\"i\":" + std::to_string(i) + "}"};
}

std::unique_ptr<bus::nats::NatsConsumer> consumer_of(const BusUnderTest& bus) {
  auto url = cli::parse_bus_url(bus.url());
  EXPECT_TRUE(url) << url.error().message;
  return std::make_unique<bus::nats::NatsConsumer>(bus::nats::NatsConsumerOptions{.servers = url->servers});
}

// Every fetch of an idle consumer waits its wait: it once took a late "no messages" answer
// to its previous pull for its own and came back at once, so an idle projector pulled
// hundreds of times a second.
TEST(NatsConsumer, FetchingFromAnIdleConsumerWaitsEveryTime) {
  auto bus = start_nats();
  auto consumer = consumer_of(*bus);
  for (int i = 0; i < 4; ++i) {
    const auto started = Clock::now();
    auto fetched = consumer->fetch(100, 300ms);
    ASSERT_TRUE(fetched) << fetched.error().message;
    EXPECT_TRUE(fetched->empty());
    EXPECT_GE(Clock::now() - started, 250ms) << "fetch " << i << " came back without waiting";
  }
}

// What is there is taken at once, up to the fetch's max; a message published while a
// fetch waits ends the wait.
TEST(NatsConsumer, FetchTakesWhatIsThereAtOnceAndAMessagePublishedMeanwhileEndsItsWait) {
  auto bus = start_nats();
  auto consumer = consumer_of(*bus);
  ASSERT_TRUE(consumer->fetch(10, 10ms));  // creates the durable consumer
  auto publisher = publisher_for(*bus);
  std::vector<es::BusMessage> five;
  for (int i = 0; i < 5; ++i) five.push_back(message(i));
  ASSERT_TRUE(publisher->publish(five));

  std::vector<std::string> bodies;
  while (bodies.size() < 5) {
    auto fetched = consumer->fetch(3, 5s);
    ASSERT_TRUE(fetched) << fetched.error().message;
    ASSERT_FALSE(fetched->empty());
    ASSERT_LE(fetched->size(), 3u);
    std::vector<std::uint64_t> tags;
    for (const auto& d : *fetched) {
      bodies.push_back(d.body);
      tags.push_back(d.tag);
    }
    ASSERT_TRUE(consumer->ack(tags));
  }
  EXPECT_EQ(bodies.front(), "{\"i\":0}");
  EXPECT_EQ(bodies.back(), "{\"i\":4}");

  auto later = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(300ms);
    const std::vector one{message(5)};
    return publisher->publish(one);
  });
  const auto started = Clock::now();
  auto fetched = consumer->fetch(100, 20s);
  const auto waited = Clock::now() - started;
  ASSERT_TRUE(later.get());
  ASSERT_TRUE(fetched) << fetched.error().message;
  ASSERT_EQ(fetched->size(), 1u);
  EXPECT_EQ(fetched->front().body, "{\"i\":5}");
  EXPECT_LT(waited, 10s);
}

// A durable lets at most max_ack_pending messages (1000 by default) be out unacknowledged: a
// fetch for more, with more waiting, still comes back at once with what it may have; so
// does a consumer made anew on the durable (as after a restart).
TEST(NatsConsumer, AFetchForMoreThanTheDurableLetsOutAtOnceComesBackAtOnce) {
  auto bus = start_nats();
  auto consumer = consumer_of(*bus);
  ASSERT_TRUE(consumer->fetch(10, 10ms));
  std::vector<es::BusMessage> many;
  for (int i = 0; i < 2500; ++i) many.push_back(message(i));
  ASSERT_TRUE(publisher_for(*bus)->publish(many));
  std::size_t taken = 0;
  while (taken < many.size()) {
    const auto started = Clock::now();
    auto fetched = consumer->fetch(2000, 20s);
    ASSERT_TRUE(fetched) << fetched.error().message;
    ASSERT_FALSE(fetched->empty());
    EXPECT_LT(Clock::now() - started, 10s) << "after " << taken << " messages";
    std::vector<std::uint64_t> tags;
    for (const auto& d : *fetched) tags.push_back(d.tag);
    ASSERT_TRUE(consumer->ack(tags));
    taken += fetched->size();
    consumer = consumer_of(*bus);  // and the same from a consumer of the durable made anew
  }
  EXPECT_EQ(taken, many.size());
}

// Publishes messages first..last (message(i)) and fetches and acknowledges everything there is.
std::vector<std::string> publish_and_take(const BusUnderTest& bus, es::BusConsumer& consumer, int first, int last) {
  std::vector<es::BusMessage> messages;
  for (int i = first; i <= last; ++i) messages.push_back(message(i));
  EXPECT_TRUE(publisher_for(bus)->publish(messages));
  std::vector<std::string> bodies;
  for (;;) {
    auto fetched = consumer.fetch(100, 300ms);
    EXPECT_TRUE(fetched) << fetched.error().message;
    if (!fetched || fetched->empty()) return bodies;
    std::vector<std::uint64_t> tags;
    for (const auto& d : *fetched) {
      bodies.push_back(d.body);
      tags.push_back(d.tag);
    }
    EXPECT_TRUE(consumer.ack(tags));
  }
}

// A stream made beforehand with a limit removes its oldest messages, read or not: the
// consumer tells of those it never had, whether they went while it was fetching, before it
// connected again, or before its durable was made (their events are then read from the store).
TEST(NatsConsumer, MessagesTheStreamsLimitRemovedBeforeTheConsumerHadThemAreToldOf) {
  auto bus = start_nats();
  make_nats_stream(*bus, {"orderflow.events.>"}, 5);
  const std::vector<std::string> all{"orderflow.events.>"};
  auto consumer = consumer_of(*bus);
  ASSERT_TRUE(consumer->fetch(10, 10ms));  // creates the durable consumer
  EXPECT_EQ(publish_and_take(*bus, *consumer, 1, 3).size(), 3u);
  EXPECT_TRUE(consumer->dropped().empty());

  // 4..13 published, 4..8 removed before the fetch.
  EXPECT_EQ(publish_and_take(*bus, *consumer, 4, 13).front(), "{\"i\":9}");
  EXPECT_EQ(consumer->dropped(), all);
  EXPECT_TRUE(consumer->dropped().empty()) << "told once";
  EXPECT_EQ(publish_and_take(*bus, *consumer, 14, 15).size(), 2u);
  EXPECT_TRUE(consumer->dropped().empty());

  // The durable's process stops; 16..25 published, 16..20 removed before it connects again.
  consumer.reset();
  std::vector<es::BusMessage> later;
  for (int i = 16; i <= 25; ++i) later.push_back(message(i));
  ASSERT_TRUE(publisher_for(*bus)->publish(later));
  consumer = consumer_of(*bus);
  ASSERT_TRUE(consumer->fetch(100, 300ms));
  EXPECT_EQ(consumer->dropped(), all);

  // A durable made now: the stream removed 1..20 before it.
  auto fresh = std::make_unique<bus::nats::NatsConsumer>(
      bus::nats::NatsConsumerOptions{.servers = cli::parse_bus_url(bus->url())->servers, .durable = "late"});
  ASSERT_TRUE(fresh->fetch(100, 300ms));
  EXPECT_EQ(fresh->dropped(), all);
}

// A message given back for a later delivery (retry) that the stream's limit removes meanwhile
// never comes back, and leaves no gap among the messages that do: it is told of too.
TEST(NatsConsumer, ARetriedMessageTheStreamsLimitRemovedBeforeItCameBackIsToldOf) {
  auto bus = start_nats();
  make_nats_stream(*bus, {"orderflow.events.>"}, 3);
  auto consumer = consumer_of(*bus);
  ASSERT_TRUE(consumer->fetch(10, 10ms));
  std::vector<es::BusMessage> three{message(1), message(2), message(3)};
  ASSERT_TRUE(publisher_for(*bus)->publish(three));
  std::vector<es::BusDelivery> delivered;
  while (delivered.size() < 3) {
    auto fetched = consumer->fetch(10, 1s);
    ASSERT_TRUE(fetched) << fetched.error().message;
    delivered.insert(delivered.end(), fetched->begin(), fetched->end());
  }
  const std::uint64_t acked[] = {delivered[0].tag, delivered[1].tag};
  ASSERT_TRUE(consumer->ack(acked));
  ASSERT_TRUE(consumer->retry(delivered[2].tag, 3s));
  // 4..6 published: the stream keeps them and removes 3, which was to come back in 3 s.
  const auto bodies = publish_and_take(*bus, *consumer, 4, 6);
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_EQ(bodies.front(), "{\"i\":4}");
  EXPECT_EQ(consumer->dropped(), std::vector<std::string>{"orderflow.events.>"});
}

// Messages removed from between others (by hand, `nats stream rmm`, or by a limit per subject)
// leave the stream's first message where it was: the consumer tells of them too, whether it
// skipped them in a fetch or had one to retry. The other messages come as ever.
TEST(NatsConsumer, MessagesRemovedFromBetweenOthersBeforeTheConsumerHadThemAreToldOf) {
  auto bus = start_nats();
  make_nats_stream(*bus, {"orderflow.events.>"}, -1);
  const std::vector<std::string> all{"orderflow.events.>"};
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, bus->url().c_str()), NATS_OK);
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  auto remove = [&](std::uint64_t sequence) {
    ASSERT_EQ(js_DeleteMsg(js, "ORDERFLOW_EVENTS", sequence, nullptr, nullptr), NATS_OK) << sequence;
  };
  auto consumer = consumer_of(*bus);
  ASSERT_TRUE(consumer->fetch(10, 10ms));
  EXPECT_EQ(publish_and_take(*bus, *consumer, 1, 3).size(), 3u);
  EXPECT_TRUE(consumer->dropped().empty());

  // Skipped in a fetch: 4..8 published (sequences 4..8), 6 removed.
  std::vector<es::BusMessage> five;
  for (int i = 4; i <= 8; ++i) five.push_back(message(i));
  ASSERT_TRUE(publisher_for(*bus)->publish(five));
  remove(6);
  EXPECT_EQ(publish_and_take(*bus, *consumer, 9, 9),
            (std::vector<std::string>{"{\"i\":4}", "{\"i\":5}", "{\"i\":7}", "{\"i\":8}", "{\"i\":9}"}));
  EXPECT_EQ(consumer->dropped(), all);
  EXPECT_TRUE(consumer->dropped().empty()) << "told once";

  // To be retried: 10 given back for a delivery in 3 s, removed meanwhile.
  const std::vector<es::BusMessage> ten{message(10)};
  ASSERT_TRUE(publisher_for(*bus)->publish(ten));
  auto fetched = consumer->fetch(10, 1s);
  ASSERT_TRUE(fetched && fetched->size() == 1u);
  ASSERT_TRUE(consumer->retry(fetched->front().tag, 3s));
  remove(10);
  EXPECT_EQ(publish_and_take(*bus, *consumer, 11, 11).size(), 1u);  // its fetches take > 250 ms
  EXPECT_EQ(consumer->dropped(), all);

  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

// A stream the operator made wider than the relay's subjects holds other messages between
// the consumer's: the sequences they take are no messages removed.
TEST(NatsConsumer, OtherSubjectsOfAWiderStreamAreNoMessagesRemoved) {
  auto bus = start_nats();
  make_nats_stream(*bus, {"orderflow.events.>", "other.>"}, -1);
  auto consumer = consumer_of(*bus);
  ASSERT_TRUE(consumer->fetch(10, 10ms));
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, bus->url().c_str()), NATS_OK);
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  std::size_t taken = 0;
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 3; ++k) ASSERT_EQ(js_Publish(nullptr, js, "other.x", "{}", 2, nullptr, nullptr), NATS_OK);
    taken += publish_and_take(*bus, *consumer, 10 * i, 10 * i + 2).size();
    EXPECT_TRUE(consumer->dropped().empty()) << "round " << i;
  }
  EXPECT_EQ(taken, 12u);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

}  // namespace
}  // namespace orderflow::testing
