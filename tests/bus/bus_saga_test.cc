// The fulfilment saga fed from the bus (app/saga/bus_saga_feed.h, `serve --roles saga --bus`
// without the relay role) against a real nats-server and librdkafka's mock cluster: a relay
// publishes the log, the saga folds it from its own durable consumer / group and its
// commands go through the command handler to the store. Every order placed ends CONFIRMED
// (or, when a step fails, compensated and CANCELLED) with the invariants of docs/api.md §5
// holding and no step done twice; the same with the log delivered out of order across
// streams, and with the saga stopped mid-way behind a stale checkpoint and started again. A
// message it cannot decode is listed with the dead letters of /api/v1/admin/dead-letters
// (app/dead_letters.h) and its retry folds its event from the store, once.
#include "app/saga/bus_saga_feed.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <random>
#include <set>
#include <mutex>
#include <thread>

#include <boost/json.hpp>

#include "app/command_handler.h"
#include "app/dead_letters.h"
#include "app/invariants.h"
#include "app/relay/relay.h"
#include "app/saga/saga_runner.h"
#include "bus/bus_under_test.h"
#include "cli/bus_factory.h"
#include "codec/domain_codec.h"
#include "core/uuid.h"
#include "store/sqlite/sqlite_read_model_db.h"
#include "support/temp_dir.h"

namespace orderflow::testing {
namespace {

using namespace domain;
using namespace std::chrono_literals;
using app::Account;
using app::Order;
using app::Product;

// Publishes each batch with its streams interleaved at random, each stream's messages still
// in order (as any bus may deliver them): JetStream then delivers the log out of order across
// streams too. Counts the messages published after one with a higher position. With
// `corrupt`: the body of the corrupt-th message it publishes is not JSON (once).
class ShufflingPublisher final : public es::BusPublisher {
 public:
  ShufflingPublisher(std::unique_ptr<es::BusPublisher> inner, std::uint64_t seed, std::size_t corrupt = 0)
      : inner_(std::move(inner)), rng_(seed), corrupt_(corrupt) {}
  Result<void> publish(std::span<const es::BusMessage> messages) override {
    std::map<std::string, std::vector<const es::BusMessage*>> by_stream;
    for (const auto& m : messages) by_stream[m.key].push_back(&m);
    std::vector<std::pair<std::vector<const es::BusMessage*>*, std::size_t>> cursor;
    for (auto& [key, list] : by_stream) cursor.emplace_back(&list, 0);
    std::vector<es::BusMessage> out;
    while (!cursor.empty()) {
      const auto i = rng_() % cursor.size();
      auto& [list, at] = cursor[i];
      out.push_back(*(*list)[at++]);
      if (at == list->size()) cursor.erase(cursor.begin() + static_cast<std::ptrdiff_t>(i));
    }
    for (auto& m : out) {
      if (++published_ == corrupt_) m.body = "{not json";
      for (const auto& [name, value] : m.headers)
        if (name == "orderflow-position") {
          const std::int64_t p = std::stoll(value);
          if (p < highest_) ++inversions_;
          highest_ = std::max(highest_, p);
        }
    }
    return inner_->publish(out);
  }
  std::uint64_t inversions() const { return inversions_; }

 private:
  std::unique_ptr<es::BusPublisher> inner_;
  std::mt19937_64 rng_;
  std::int64_t highest_ = 0;  // of the messages published
  std::size_t corrupt_, published_ = 0;
  std::atomic<std::uint64_t> inversions_{0};
};

// The store's checkpoints, with saves dropped once frozen: what a process killed right after
// acknowledging messages leaves behind (acks sent, its checkpoint older).
class FreezableCheckpoints final : public es::CheckpointStore {
 public:
  explicit FreezableCheckpoints(es::CheckpointStore& inner) : inner_(inner) {}
  Result<es::Position> load_checkpoint(const std::string& name) override { return inner_.load_checkpoint(name); }
  Result<void> save_checkpoint(const std::string& name, es::Position position) override {
    if (frozen_) return {};
    return inner_.save_checkpoint(name, position);
  }
  std::atomic<bool> frozen_{false};

 private:
  es::CheckpointStore& inner_;
};

class BusSagaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = open_sqlite_store(dir_.file("events.db"));
    ASSERT_TRUE(store_);
    handler_ = std::make_unique<app::CommandHandler>(*store_, store_.get());
    checkpoints_ = std::make_unique<FreezableCheckpoints>(*store_);
    auto db = sqlite::SqliteReadModelDb::open(dir_.file("readmodels.db"));
    ASSERT_TRUE(db) << db.error().message;
    read_models_ = std::move(*db);
  }
  void TearDown() override {
    admin_.reset();
    admin_sagas_.reset();
    saga_.reset();
    relay_.reset();
  }

  template <class A>
  Result<app::Handled<A>> run(const std::string& id, typename A::Command cmd) {
    std::promise<Result<app::Handled<A>>> answer;
    handler_->handle<A>(id, std::move(cmd), {}, [&](Result<app::Handled<A>> r) { answer.set_value(std::move(r)); });
    return answer.get_future().get();
  }

  void start_relay(std::uint64_t seed, std::size_t corrupt = 0) {
    publisher_ = std::make_unique<ShufflingPublisher>(publisher_for(*bus_), seed, corrupt);
    relay_ = std::make_unique<app::relay::Relay>(*store_, *store_, *publisher_,
                                                 app::relay::RelayOptions{.bus = bus_->url(), .batch_size = 200});
    relay_->start();
  }

  // A saga fed from the bus with the consumer `serve --roles saga --bus` opens. Gaps wait
  // 10 minutes before the store fills them (by default): what it folds came through the bus
  // in order.
  void start_saga(std::chrono::milliseconds gap_wait = 600s) {
    saga_ = std::make_unique<app::saga::SagaRunner>(*handler_, checkpoints_.get());
    const auto url = bus_->url();
    saga_->feed_from_bus(
        {.open_consumer =
             [url] { return cli::open_bus_consumer(*cli::parse_bus_url(url), {.consumer = "orderflow-saga"}); },
         .options = {
             .bus = url, .consumer = "orderflow-saga", .gap_wait = gap_wait, .dead_letter_db = read_models_.get()}});
    ASSERT_TRUE(saga_->start());
  }

  // Products p0-p3 (100 units each, 250 cents), accounts c0-c3 (funded) and c4 (empty).
  void catalogue() {
    for (int i = 0; i < 4; ++i) {
      const auto p = "p" + std::to_string(i), c = "c" + std::to_string(i);
      ASSERT_TRUE(run<Product>(p, product::RegisterProduct{p, "P " + p, 250, 100}));
      ASSERT_TRUE(run<Account>(c, account::OpenAccount{c, "Owner " + c}));
      ASSERT_TRUE(run<Account>(c, account::Deposit{1'000'000}));
    }
    ASSERT_TRUE(run<Account>("c4", account::OpenAccount{"c4", "Broke"}));
  }

  // Orders of 1-2 units of one or two products, by a funded customer; every 10th by c4
  // (declined: compensated), and the (n/2)th of 1000 units (insufficient stock: compensated).
  // `more` (if any) says whether to go on after n; `pace`: the pause before each.
  void place(int n, std::uint64_t seed, std::function<bool(int)> more = {},
             std::chrono::milliseconds pace = std::chrono::milliseconds(0)) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < n || (more && more(i)); ++i) {
      if (pace.count() > 0) std::this_thread::sleep_for(pace);
      const auto id = uuid_v7();
      const auto customer = i % 10 == 9 ? std::string("c4") : "c" + std::to_string(rng() % 4);
      std::vector<order::PlaceOrderItem> items{
          {"p" + std::to_string(rng() % 4), 1 + static_cast<std::int64_t>(rng() % 2), 250}};
      if (rng() % 2) items.push_back({"p" + std::to_string(rng() % 4), 1, 250});
      if (i == n / 2) items = {{"p0", 1000, 250}};
      ASSERT_TRUE(run<Order>(id, order::PlaceOrder{id, customer, items, std::nullopt, 1000 + i}));
      std::lock_guard lk(orders_mu_);
      orders_.push_back(id);
    }
  }

  std::vector<std::string> orders() {
    std::lock_guard lk(orders_mu_);
    return orders_;
  }

  std::size_t final_orders() {
    std::size_t n = 0;
    for (const auto& id : orders()) {
      auto o = handler_->load<Order>(id);
      if (o && (o->state.status == order::OrderStatus::confirmed || o->state.status == order::OrderStatus::cancelled))
        ++n;
    }
    return n;
  }

  // Every order final, the saga idle; the invariants hold and no step was done twice.
  void expect_all_final_and_clean() {
    ASSERT_TRUE(wait_until([&] { return final_orders() == orders_.size() && saga_->active() == 0; }, 240s))
        << final_orders() << " of " << orders_.size() << " final; " << saga_->bus_status()->last_error.value_or("")
        << " state " << saga_->bus_status()->state;
    auto broken = app::check_invariants(*store_);
    ASSERT_TRUE(broken);
    EXPECT_TRUE(broken->empty()) << broken->size() << " broken, first: " << broken->front();
    std::map<std::string, int> steps;  // (type, order, product) -> events
    std::size_t confirmed = 0, cancelled = 0;
    ASSERT_TRUE(store_->scan_all(es::Position{1}, 1'000'000, {}, [&](const es::RecordedEvent& e) {
      if (e.type == std::string_view(product::StockReserved::kType) ||
          e.type == std::string_view(product::StockReleased::kType) ||
          e.type == std::string_view(account::AccountCharged::kType) ||
          e.type == std::string_view(account::AccountRefunded::kType)) {
        auto data = boost::json::parse(e.data).as_object();
        ++steps[e.type + " " + std::string(data.at("order_id").as_string()) + " " + e.stream_id.str()];
      }
      if (e.type == std::string_view(order::OrderConfirmed::kType)) ++confirmed;
      if (e.type == std::string_view(order::OrderCancelled::kType)) ++cancelled;
    }));
    for (const auto& [step, n] : steps) EXPECT_EQ(n, 1) << step << " done " << n << " times";
    EXPECT_EQ(confirmed + cancelled, orders_.size());
    EXPECT_GE(cancelled, orders_.size() / 10) << "the declined and the unstocked orders compensated";
    EXPECT_GT(confirmed, orders_.size() / 2);
    for (int i = 0; i < 4; ++i) {  // what is not held by a confirmed order is back on the shelf
      auto p = handler_->load<Product>("p" + std::to_string(i));
      ASSERT_TRUE(p);
      EXPECT_LE(p->state.reserved, p->state.on_hand);
    }
  }

  void fed_case() {
    start_relay(1);
    start_saga();
    catalogue();
    place(60, 2);
    expect_all_final_and_clean();
    const auto s = *saga_->bus_status();
    EXPECT_EQ(s.state, "consuming");
    EXPECT_GT(s.folded, 0u);
    EXPECT_EQ(s.gaps_filled, 0u) << "every event came through the bus";
    EXPECT_EQ(s.dead_lettered, 0u);
    EXPECT_GT(publisher_->inversions(), 0u) << "the bus got the log out of order";
    EXPECT_GT(s.out_of_order, 0u) << "the saga got the log out of order";
    std::printf("%s: %llu messages folded, %llu published and %llu delivered out of order, %llu repeats\n",
                bus_->name().c_str(), static_cast<unsigned long long>(s.folded),
                static_cast<unsigned long long>(publisher_->inversions()),
                static_cast<unsigned long long>(s.out_of_order), static_cast<unsigned long long>(s.repeats));
  }

  // Orders placed one after another (every 20 ms) while the saga runs; it is stopped once 15 are final
  // (on a count, not a timer) with its checkpoint frozen long before (its acks sent, its
  // checkpoint stale, as after a kill), and at least 20 more are placed before it starts
  // again: it folds the acknowledged stretch from the store and the rest from the bus.
  void restart_case() {
    start_relay(3);
    start_saga(2s);
    catalogue();
    checkpoints_->frozen_ = true;
    // The bus brought the catalogue (folded from it, or from the store first: repeats).
    ASSERT_TRUE(wait_until(
        [&] {
          const auto s = *saga_->bus_status();
          return s.folded + s.repeats >= 13;
        },
        240s))
        << "the saga consumes";
    std::atomic<bool> stopped{false};
    std::atomic<std::size_t> placed_at_stop{0};
    // One every 20 ms, on until 20 were placed after the stop (at most 400 in all).
    auto more = [&](int i) { return i < 400 && (!stopped || orders().size() < placed_at_stop + 20); };
    std::thread placer([&] { place(90, 4, more, 20ms); });
    const bool reached = wait_until([&] { return final_orders() >= 15; }, 240s);
    saga_->stop();
    const auto at_stop = final_orders();
    placed_at_stop = orders().size();
    stopped = true;
    placer.join();
    ASSERT_TRUE(reached) << final_orders() << " orders final";
    ASSERT_GE(orders().size(), placed_at_stop + 20) << "orders placed while the saga was down";
    saga_.reset();
    checkpoints_->frozen_ = false;
    // The default gap wait: a new Kafka group member may wait long for its partitions (the
    // mock cluster rebalances slowly), and meanwhile the store bridges the bus.
    start_saga(2s);
    expect_all_final_and_clean();
    // The bus resumes too, from what was acknowledged (on Kafka once the group has given the
    // new member its partitions; the store bridged until then).
    ASSERT_TRUE(wait_until(
        [&] {
          const auto b = *saga_->bus_status();
          return b.folded + b.repeats > 0;
        },
        180s));
    const auto s = *saga_->bus_status();
    EXPECT_GT(s.from_store, 0u) << "the stretch acknowledged past the checkpoint came from the store";
    EXPECT_EQ(s.dead_lettered, 0u);
    std::printf(
        "%s: stopped with %zu of %zu orders final; restarted: %llu events from the store, %llu folded from the bus, "
        "%llu repeats\n",
        bus_->name().c_str(), at_stop, orders().size(), static_cast<unsigned long long>(s.from_store),
        static_cast<unsigned long long>(s.folded), static_cast<unsigned long long>(s.repeats));
  }

  // A message the saga cannot decode (an event's body corrupted on its way: the 30th
  // published) goes to its consumer's dead letters with the reason; the gap it leaves is
  // filled from the store (after 1 s) and every order still ends final.
  void poison_case() {
    start_relay(9, 30);
    start_saga(1s);
    catalogue();
    place(30, 10);
    expect_all_final_and_clean();
    const auto s = *saga_->bus_status();
    EXPECT_EQ(s.dead_lettered, 1u);
    EXPECT_GE(s.gaps_filled, 1u);
    EXPECT_GE(s.from_store, 1u);
    // Listed; its retry finds its event folded already (its gap was filled): nothing more.
    const auto letter = listed_dead_letter();
    auto done = retry(letter.dead_letter_id);
    ASSERT_TRUE(done) << done.error().message;
    const auto redriven = std::get<app::bus_projector::Redriven>(*done);
    EXPECT_EQ(redriven.events, 0u) << "its event was folded when its gap was filled";
    EXPECT_EQ(redriven.position, letter.position);
    expect_retried(letter, redriven);
  }

  // The one dead letter of the saga's consumer, as /api/v1/admin/dead-letters lists it:
  // with its reason, subject, and the event id, stream, version and position of its event.
  app::bus_projector::BusDeadLetter listed_dead_letter() {
    admin_sagas_ = std::make_unique<app::saga::SagaAdmin>(*store_, saga_.get());
    admin_ = std::make_unique<app::DeadLetterAdmin>(*admin_sagas_,
                                                    std::vector<app::bus_projector::BusDeadLetterSource*>{saga_.get()});
    auto listed = admin_->list();
    EXPECT_TRUE(listed) << listed.error().message;
    EXPECT_EQ(listed->size(), 1u);
    if (!listed || listed->empty()) return {};
    const auto letter = std::get<app::bus_projector::BusDeadLetter>(listed->front());
    EXPECT_EQ(letter.consumer, "orderflow-saga");
    EXPECT_FALSE(letter.reason.empty());
    EXPECT_FALSE(letter.retried_at_ms);
    EXPECT_TRUE(letter.position);
    if (!letter.position) return letter;
    // The event the message carried, as the store has it.
    std::optional<es::RecordedEvent> event;
    EXPECT_TRUE(store_->scan_all(*letter.position, 1, {}, [&](const es::RecordedEvent& e) { event = e; }));
    EXPECT_TRUE(event && event->position == *letter.position);
    if (!event) return letter;
    EXPECT_EQ(letter.stream_id, event->stream_id);
    EXPECT_EQ(letter.version, event->version);
    EXPECT_EQ(letter.event_id, event->event_id);
    EXPECT_EQ(letter.subject, "orderflow.events." + std::string(event->stream_id.category()));
    return letter;
  }

  Result<app::AnyRetry> retry(const std::string& id) {
    std::promise<Result<app::AnyRetry>> answer;
    admin_->retry({id, "operator"}, [&](Result<app::AnyRetry> r) { answer.set_value(std::move(r)); });
    return answer.get_future().get();
  }

  // `letter` marked retried (listed so, by "operator"); a second retry is invalid_state, and
  // no step was done twice.
  void expect_retried(const app::bus_projector::BusDeadLetter& letter, const app::bus_projector::Redriven& redriven) {
    EXPECT_EQ(redriven.dead_letter_id, letter.dead_letter_id);
    EXPECT_EQ(redriven.consumer, "orderflow-saga");
    EXPECT_EQ(redriven.stream_id, letter.stream_id);
    EXPECT_EQ(redriven.version, letter.version);
    auto again = retry(letter.dead_letter_id);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Errc::invalid_state) << again.error().message;
    auto listed = admin_->list();
    ASSERT_TRUE(listed && listed->size() == 1u);
    const auto retried = std::get<app::bus_projector::BusDeadLetter>(listed->front());
    EXPECT_EQ(retried.dead_letter_id, letter.dead_letter_id);
    EXPECT_EQ(retried.retried_at_ms, redriven.retried_at_ms);
    EXPECT_EQ(retried.retried_by, "operator");
    EXPECT_EQ(retried.position, letter.position);
    expect_all_final_and_clean();
  }

  TempDir dir_;
  std::unique_ptr<BusUnderTest> bus_;
  std::unique_ptr<sqlite::SqliteEventStore> store_;
  std::unique_ptr<app::CommandHandler> handler_;
  std::unique_ptr<FreezableCheckpoints> checkpoints_;
  std::unique_ptr<ShufflingPublisher> publisher_;
  std::unique_ptr<app::relay::Relay> relay_;
  std::unique_ptr<app::saga::SagaRunner> saga_;
  std::unique_ptr<es::ReadModelDb> read_models_;  // the saga's dead letters
  std::unique_ptr<app::saga::SagaAdmin> admin_sagas_;
  std::unique_ptr<app::DeadLetterAdmin> admin_;
  std::mutex orders_mu_;
  std::vector<std::string> orders_;  // placed (by the test's thread or a placer)
};

TEST_F(BusSagaTest, OrdersReachAFinalStateThroughASagaFedFromNatsOutOfLogOrder) {
  bus_ = start_nats();
  fed_case();
}

TEST_F(BusSagaTest, OrdersReachAFinalStateThroughASagaFedFromAKafkaGroupOutOfLogOrder) {
  bus_ = start_kafka();
  fed_case();
}

TEST_F(BusSagaTest, ASagaFedFromNatsStoppedBehindAStaleCheckpointResumesAndDoesNoStepTwice) {
  bus_ = start_nats();
  restart_case();
}

TEST_F(BusSagaTest, ASagaFedFromKafkaStoppedBehindAStaleCheckpointResumesAndDoesNoStepTwice) {
  bus_ = start_kafka();
  restart_case();
}

// The bus away when the saga starts: retried and shown (state retrying, its error), never a
// crash; the store bridges it meanwhile, so orders still end final; once the bus is back the
// saga consumes from it again.
TEST_F(BusSagaTest, ABusAwayAtStartIsRetriedAndShownWhileTheStoreBridgesIt) {
  bus_ = start_nats();
  start_relay(11);
  bus_->stop();
  start_saga(1s);
  ASSERT_TRUE(wait_until([&] { return saga_->bus_status()->state == "retrying"; }, 60s));
  EXPECT_TRUE(saga_->bus_status()->last_error);
  catalogue();
  place(20, 12);
  ASSERT_TRUE(wait_until([&] { return final_orders() == orders().size(); }, 120s)) << "the store bridged the bus";
  EXPECT_EQ(saga_->bus_status()->state, "retrying");
  bus_->start();
  ASSERT_TRUE(wait_until([&] { return saga_->bus_status()->state == "consuming"; }, 120s))
      << saga_->bus_status()->last_error.value_or("");
  place(10, 13);
  expect_all_final_and_clean();
  const auto s = *saga_->bus_status();
  EXPECT_GT(s.folded + s.repeats, 0u) << "the bus delivered once back";
  EXPECT_GT(s.gaps_filled, 0u);
}

TEST_F(BusSagaTest, AnUndecodableMessageOnNatsIsDeadLetteredAndItsGapFilledFromTheStore) {
  bus_ = start_nats();
  poison_case();
}

TEST_F(BusSagaTest, AnUndecodableMessageOnKafkaIsDeadLetteredAndItsGapFilledFromTheStore) {
  bus_ = start_kafka();
  poison_case();
}

// Gaps left to wait for 10 minutes: the saga stalls behind the message it could not decode
// (every order placed after it stays unfinished) until that dead letter's retry folds its
// event from the store; then every order ends final, no step done twice.
TEST_F(BusSagaTest, RetryingASagaBusDeadLetterOnNatsFoldsItsEventFromTheStoreOnce) {
  bus_ = start_nats();
  start_relay(9, 30);
  start_saga();
  catalogue();
  place(30, 10);
  ASSERT_TRUE(wait_until([&] { return saga_->bus_status()->dead_lettered == 1; }, 120s));
  const auto letter = listed_dead_letter();
  ASSERT_TRUE(letter.position);
  // Stalled at its event: nothing past it folded, for a while.
  ASSERT_TRUE(wait_until([&] { return saga_->bus_status()->gap_until.has_value(); }, 60s));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(saga_->bus_status()->next, *letter.position) << "the saga waits for the dead letter's event";
  EXPECT_LT(final_orders(), orders().size());
  auto done = retry(letter.dead_letter_id);
  ASSERT_TRUE(done) << done.error().message;
  const auto redriven = std::get<app::bus_projector::Redriven>(*done);
  EXPECT_GE(redriven.events, 1u) << "its event folded from the store";
  EXPECT_EQ(redriven.position, letter.position);
  EXPECT_GT(saga_->bus_status()->next, *letter.position);
  expect_retried(letter, redriven);
  const auto s = *saga_->bus_status();
  EXPECT_EQ(s.dead_lettered, 1u);
  EXPECT_EQ(s.gaps_filled, 1u) << "only the retry filled from the store";
}

}  // namespace
}  // namespace orderflow::testing
