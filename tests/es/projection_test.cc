// ProjectionRunner: a copy whose batch fails (its database full) is retried with back-off
// and resumes by itself, showing the error meanwhile; no event is skipped or applied twice.
#include "es/projection.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "core/failures.h"

namespace orderflow::es {
namespace {

using namespace std::chrono_literals;

// A log of events in memory; only what subscriptions read.
class LogStore final : public EventStore {
 public:
  void add(std::int64_t n) {
    std::lock_guard lk(mu_);
    for (std::int64_t i = 0; i < n; ++i) {
      RecordedEvent e;
      e.position = static_cast<Position>(events_.size()) + 1;
      e.event_id = "e" + to_string(e.position);
      e.stream_id = "thing-1";
      e.type = "Happened";
      e.version = StreamVersion{e.position.value() - 1};
      events_.push_back(e);
    }
  }
  void append_async(AppendRequest, AppendCallback done) override { done(fail(Errc::internal, "read only")); }
  Result<std::vector<RecordedEvent>> read_stream(const StreamId&, StreamVersion, std::size_t, Direction) override {
    return std::vector<RecordedEvent>{};
  }
  Result<std::optional<RecordedEvent>> read_event(const std::string&) override { return std::optional<RecordedEvent>(); }
  Result<Position> scan_all(Position from, std::size_t max, const EventFilter&,
                            const std::function<void(const RecordedEvent&)>& fn) override {
    std::lock_guard lk(mu_);
    std::size_t taken = 0;
    for (const auto& e : events_) {
      if (e.position < from) continue;
      if (taken == max) return e.position;
      fn(e);
      ++taken;
    }
    return std::max(from, static_cast<Position>(events_.size()) + 1);
  }
  Result<Position> last_position() override {
    std::lock_guard lk(mu_);
    return static_cast<Position>(events_.size());
  }
  Result<StreamVersion> stream_version(const StreamId&) override { return kNoStream; }
  Result<std::optional<IdempotencyRecord>> find_idempotency(const std::string&) override {
    return std::optional<IdempotencyRecord>();
  }
  bool wait_for_events(Position, std::chrono::milliseconds timeout) override {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(5)));
    return true;
  }

 private:
  std::mutex mu_;
  std::vector<RecordedEvent> events_;
};

// A read model that records the positions it applied; its next `failures` applies fail.
class CountingModel final : public ReadModel {
 public:
  Result<Position> position() override {
    std::lock_guard lk(mu_);
    if (position_failures_ > 0) {
      --position_failures_;
      return fail(Errc::unavailable, "the read-model database cannot be read (injected)");
    }
    return through_;
  }
  Result<void> apply(std::span<const RecordedEvent> events, Position through) override {
    std::lock_guard lk(mu_);
    ++calls_;
    if (failures_ > 0) {
      --failures_;
      return fail(Errc::unavailable, "database or disk is full (injected)");
    }
    for (const auto& e : events) applied_.push_back(e.position);
    through_ = through;
    return {};
  }
  void fail_next(int n) {
    std::lock_guard lk(mu_);
    failures_ = n;
  }
  void fail_position_next(int n) {
    std::lock_guard lk(mu_);
    position_failures_ = n;
  }
  std::vector<Position> applied() {
    std::lock_guard lk(mu_);
    return applied_;
  }
  int calls() {
    std::lock_guard lk(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  Position through_{0};
  int failures_ = 0, position_failures_ = 0, calls_ = 0;
  std::vector<Position> applied_;
};

// Hands out one model as its live copy (the runner owns what open_live returns).
class OneProjection final : public Projection {
 public:
  explicit OneProjection(CountingModel* model) : model_(model) {}
  const std::string& name() const override { return name_; }
  EventFilter filter() const override { return {}; }
  Result<std::unique_ptr<ReadModel>> open_live() override { return std::unique_ptr<ReadModel>(new Borrowed(model_)); }
  Result<std::unique_ptr<ReadModel>> create_copy() override { return fail(Errc::internal, "no rebuilds here"); }
  Result<void> promote(ReadModel&) override { return {}; }

 private:
  struct Borrowed final : ReadModel {
    explicit Borrowed(CountingModel* m) : m(m) {}
    Result<Position> position() override { return m->position(); }
    Result<void> apply(std::span<const RecordedEvent> events, Position through) override {
      return m->apply(events, through);
    }
    CountingModel* m;
  };
  std::string name_ = "things";
  CountingModel* model_;
};

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds within = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A runner that looks for new events at once.
ProjectionRunnerOptions quick_options() {
  ProjectionRunnerOptions options;
  options.batch_interval = 0ms;
  options.idle_wait = 5ms;
  return options;
}

// What core/failures counts for the test projection's restarts.
FailureCount restart_failures() {
  for (auto& f : failure_counts())
    if (f.component == "projections" && f.what == "things") return f;
  return {};
}

TEST(ProjectionRunner, FailedBatchIsRetriedWithBackOffAndResumes) {
  LogStore store;
  CountingModel model;
  OneProjection projection(&model);
  ProjectionRunner runner(store, {&projection}, quick_options());
  store.add(3);
  ASSERT_TRUE(runner.start());
  ASSERT_TRUE(eventually([&] { return runner.position("things") == 3; }));

  model.fail_next(3);
  store.add(2);
  // Failed meanwhile, with the error shown.
  ASSERT_TRUE(eventually([&] {
    auto s = runner.status().front();
    return s.state == ProjectionState::failed && s.last_error && s.last_error->find("full") != std::string::npos;
  }));
  // Retried after 100, 200 and 400 ms, then it works.
  const auto failed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return runner.position("things") == 5; }, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - failed_at, 500ms);  // it backed off
  EXPECT_EQ(model.calls(), 1 + 3 + 1);
  auto s = runner.status().front();
  EXPECT_EQ(s.state, ProjectionState::running);
  EXPECT_FALSE(s.last_error);
  EXPECT_EQ(model.applied(), (std::vector{Position{1}, Position{2}, Position{3}, Position{4}, Position{5}}));
  runner.stop();
}

// A restart that fails is reported; once one succeeds the failure is over (/metrics
// orderflow_background_failing goes back to 0).
TEST(ProjectionRunner, FailedRestartIsReportedAndRecovers) {
  LogStore store;
  CountingModel model;
  OneProjection projection(&model);
  ProjectionRunner runner(store, {&projection}, quick_options());
  ASSERT_TRUE(runner.start());
  model.fail_next(1);
  model.fail_position_next(1);  // the first restart cannot read where the model stands
  store.add(2);
  ASSERT_TRUE(eventually([&] { return runner.position("things") == 2; }));
  EXPECT_GT(restart_failures().count, 0u);
  EXPECT_FALSE(restart_failures().failing);
  runner.stop();
}

}  // namespace
}  // namespace orderflow::es
