// SagaRunner's worker thread on a real SQLite store: it sleeps while nothing is due and
// wakes for a step's deadline when it comes.
#include "app/saga/saga_runner.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/command_handler.h"
#include "app/forwarding_event_store.h"
#include "core/uuid.h"
#include "store/sqlite/sqlite_event_store.h"
#include "support/temp_dir.h"

namespace orderflow::app::saga {
namespace {

using namespace domain;
using namespace std::chrono_literals;

// The times this process's thread named `name` gave up the CPU by itself (waits and
// sleeps): one per wake-up of a thread that waits between its rounds.
std::optional<long> wakeups_of(const std::string& name) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string n;
    std::getline(comm, n);
    if (n != name) continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.starts_with("voluntary_ctxt_switches:")) return std::stol(line.substr(line.find(':') + 1));
  }
  return std::nullopt;
}

// Holds the appends to product streams while `hold` is set (a reservation that gets no
// answer), and lets them through on release().
class HoldingStore final : public testing::ForwardingEventStore {
 public:
  using ForwardingEventStore::ForwardingEventStore;

  void append_async(es::AppendRequest req, es::AppendCallback done) override {
    {
      std::lock_guard lk(mu_);
      if (hold_ && req.stream_id.category() == Product::category) {
        held_.emplace_back(std::move(req), std::move(done));
        return;
      }
    }
    inner_.append_async(std::move(req), std::move(done));
  }

  void hold() {
    std::lock_guard lk(mu_);
    hold_ = true;
  }

  void release() {
    std::vector<std::pair<es::AppendRequest, es::AppendCallback>> held;
    {
      std::lock_guard lk(mu_);
      hold_ = false;
      held.swap(held_);
    }
    for (auto& [req, done] : held) inner_.append_async(std::move(req), std::move(done));
  }

 private:
  std::mutex mu_;
  bool hold_ = false;
  std::vector<std::pair<es::AppendRequest, es::AppendCallback>> held_;
};

class SagaRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sqlite::SqliteEventStoreOptions o;
    o.path = dir_.file("events.db");
    auto opened = sqlite::SqliteEventStore::open(o);
    ASSERT_TRUE(opened) << opened.error().message;
    sqlite_ = std::move(*opened);
    store_ = std::make_unique<HoldingStore>(*sqlite_);
    handler_ = std::make_unique<CommandHandler>(*store_, sqlite_.get());
  }

  void TearDown() override {
    store_->release();  // the answers a stopping saga waits for
    saga_.reset();
  }

  template <class A>
  Result<Handled<A>> run(const std::string& id, typename A::Command cmd) {
    std::promise<Result<Handled<A>>> answer;
    handler_->handle<A>(id, std::move(cmd), {}, [&](Result<Handled<A>> r) { answer.set_value(std::move(r)); });
    return answer.get_future().get();
  }

  void start(SagaOptions options = {}) {
    saga_ = std::make_unique<SagaRunner>(*handler_, sqlite_.get(), options);
    ASSERT_TRUE(saga_->start());
  }

  testing::TempDir dir_;
  std::unique_ptr<sqlite::SqliteEventStore> sqlite_;
  std::unique_ptr<HoldingStore> store_;
  std::unique_ptr<CommandHandler> handler_;
  std::unique_ptr<SagaRunner> saga_;
};

TEST_F(SagaRunnerTest, AnIdleSagaDoesNotWake) {
  start();
  std::this_thread::sleep_for(200ms);  // its first round
  const auto before = wakeups_of("of-saga-worker");
  ASSERT_TRUE(before) << "no thread of-saga-worker";
  std::this_thread::sleep_for(2s);
  const auto after = wakeups_of("of-saga-worker");
  ASSERT_TRUE(after);
  // For its checkpoint, once a second (a save waits for the store a few times); it woke
  // every 20 ms: 105 times in 2 s.
  EXPECT_LE(*after - *before, 12) << "woke " << *after - *before << " times";
}

TEST_F(SagaRunnerTest, AStepWithNoAnswerIsTriedAgainAtItsDeadline) {
  ASSERT_TRUE(run<Product>("p1", product::RegisterProduct{"p1", "P", 250, 10}));
  ASSERT_TRUE(run<Account>("c1", account::OpenAccount{"c1", "Owner"}));
  ASSERT_TRUE(run<Account>("c1", account::Deposit{10'000}));
  start(SagaOptions{.step_timeout_ms = 300});
  std::this_thread::sleep_for(200ms);  // caught up: deadlines fire
  store_->hold();  // the reservation gets no answer
  const auto placed = std::chrono::steady_clock::now();
  const auto id = uuid_v7();
  ASSERT_TRUE(run<Order>(id, order::PlaceOrder{id, "c1", {{"p1", 1, 250}}, std::nullopt, 1000}));
  while (saga_->deadlines_fired() == 0 && std::chrono::steady_clock::now() - placed < 5s)
    std::this_thread::sleep_for(5ms);
  const auto waited = std::chrono::steady_clock::now() - placed;
  ASSERT_EQ(saga_->deadlines_fired(), 1u) << "the reservation's deadline never fired";
  EXPECT_GE(waited, 300ms);
  // Woken for it, not at its next round (the checkpoint's, up to a second later).
  EXPECT_LT(waited, 700ms);
  store_->release();
  for (int i = 0; i < 500 && (!saga_->view(id) || saga_->view(id)->state == SagaState::running); ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(saga_->view(id));
  EXPECT_EQ(saga_->view(id)->state, SagaState::completed) << "the order is confirmed once the answers come";
}

}  // namespace
}  // namespace orderflow::app::saga
