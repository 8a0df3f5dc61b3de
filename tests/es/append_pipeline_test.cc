// The append pipeline over in-memory backends that fail, pause and count on demand:
// - exclusive: a failed batch write or sync fails that batch and every append behind it,
//   the pipeline refuses appends until the backend recovers, then versions and positions
//   continue from what is durable (fail-stop);
// - group commit: appends arriving during a write are written as one batch, in one
//   transaction and one sync; with group commit off (`--no-group-commit`), each append is
//   written and synced alone;
// - shared: the database numbers appends; a conflict with one of this process's appends
//   not yet numbered is parked until it is.
#include "es/append_pipeline.h"
#include "es/append_metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace orderflow::es {
namespace {

using namespace std::chrono_literals;

// An in-memory exclusive backend. write_batch commits rows at once (readers see them, as
// SQLite's do before the sync); failures and pauses are switched on by the test.
class FailingBackend final : public ExclusiveAppendBackend {
 public:
  struct Row {
    std::string event_id;
    StreamId stream_id;
    StreamVersion version;
    Position position;
  };

  Result<void> write_batch(std::vector<StagedAppend>& batch) override {
    std::unique_lock lk(mu_);
    ++writes_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return !hold_writes_; });
    batch_sizes_.push_back(batch.size());
    if (fail_writes_ > 0) {
      --fail_writes_;
      return fail(Errc::unavailable, "disk full (injected)");
    }
    for (const auto& a : batch)
      for (std::size_t i = 0; i < a.request.events.size(); ++i)
        rows_.push_back({a.request.events[i].event_id, a.request.stream_id,
                         a.first_version + static_cast<std::int64_t>(i), a.first_position + static_cast<std::int64_t>(i)});
    return {};
  }
  Result<void> sync(std::size_t batches) override {
    std::unique_lock lk(mu_);
    ++syncs_started_;
    sync_calls_.push_back(batches);
    cv_.notify_all();
    cv_.wait(lk, [&] { return !hold_syncs_; });
    if (fail_syncs_ > 0) {
      --fail_syncs_;
      return fail(Errc::unavailable, "fdatasync: I/O error (injected)");
    }
    return {};
  }
  Result<StreamVersion> committed_version(const es::StreamId& stream_id) override {
    std::lock_guard lk(mu_);
    ++version_reads_;
    StreamVersion v = kNoStream;
    for (const auto& r : rows_)
      if (r.stream_id == stream_id) v = r.version;
    return v;
  }
  Result<Position> committed_last_position() override {
    std::lock_guard lk(mu_);
    return rows_.empty() ? Position{0} : rows_.back().position;
  }
  Result<std::optional<StoredEventRef>> find_event(const std::string& event_id) override {
    std::lock_guard lk(mu_);
    for (const auto& r : rows_)
      if (r.event_id == event_id) return std::optional<StoredEventRef>(StoredEventRef{r.stream_id, r.version, r.position});
    return std::optional<StoredEventRef>();
  }
  Result<bool> idempotency_key_exists(const std::string&) override { return false; }
  Result<void> recover(Position durable) override {
    std::lock_guard lk(mu_);
    ++recovers_;
    if (fail_recovers_ > 0) {
      --fail_recovers_;
      return fail(Errc::unavailable, "still full (injected)");
    }
    std::erase_if(rows_, [&](const Row& r) { return r.position > durable; });
    return {};
  }

  void fail_writes(int n) { set([&] { fail_writes_ = n; }); }
  void fail_syncs(int n) { set([&] { fail_syncs_ = n; }); }
  void fail_recovers(int n) { set([&] { fail_recovers_ = n; }); }
  void hold_writes(bool on) { set([&] { hold_writes_ = on; }); }
  void hold_syncs(bool on) { set([&] { hold_syncs_ = on; }); }
  // Blocks until `count()` reaches n.
  void await(int n, int FailingBackend::*count) {
    std::unique_lock lk(mu_);
    ASSERT_TRUE(cv_.wait_for(lk, 5s, [&] { return this->*count >= n; }));
  }
  std::vector<Row> rows() {
    std::lock_guard lk(mu_);
    return rows_;
  }
  int recovers() {
    std::lock_guard lk(mu_);
    return recovers_;
  }
  int writes() {
    std::lock_guard lk(mu_);
    return writes_;
  }
  // committed_version calls: the streams whose version the pipeline did not know.
  int version_reads() {
    std::lock_guard lk(mu_);
    return version_reads_;
  }
  // The number of appends in each batch written, in order.
  std::vector<std::size_t> batch_sizes() {
    std::lock_guard lk(mu_);
    return batch_sizes_;
  }
  // The number of batches each sync was asked to make durable, in order.
  std::vector<std::size_t> sync_calls() {
    std::lock_guard lk(mu_);
    return sync_calls_;
  }

  int writes_ = 0, syncs_started_ = 0;  // calls begun; guarded by mu_ (read by await)

 private:
  template <class F>
  void set(F f) {
    {
      std::lock_guard lk(mu_);
      f();
    }
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Row> rows_;
  std::vector<std::size_t> batch_sizes_, sync_calls_;
  int fail_writes_ = 0, fail_syncs_ = 0, fail_recovers_ = 0, recovers_ = 0, version_reads_ = 0;
  bool hold_writes_ = false, hold_syncs_ = false;
};

AppendRequest request(const StreamId& stream, ExpectedVersion expected, std::vector<std::string> ids) {
  AppendRequest r;
  r.stream_id = stream;
  r.expected = expected;
  for (auto& id : ids) r.events.push_back(NewEvent{std::move(id), "Happened", 1, "{}", "{}"});
  return r;
}

class AppendPipelineRecovery : public ::testing::Test {
 protected:
  AppendPipelineRecovery() : pipeline_(backend_, {}, [] { return std::int64_t{0}; }) {}
  void SetUp() override { ASSERT_TRUE(pipeline_.start()); }

  std::future<Result<AppendResult>> append_async(AppendRequest r) {
    auto promise = std::make_shared<std::promise<Result<AppendResult>>>();
    auto answer = promise->get_future();
    pipeline_.append(std::move(r), [promise](Result<AppendResult> result) { promise->set_value(std::move(result)); });
    return answer;
  }
  Result<AppendResult> append(AppendRequest r) { return append_async(std::move(r)).get(); }

  // Polls until the pipeline accepts appends again.
  bool recovered(std::chrono::milliseconds within = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (pipeline_.write_failure()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  static void expect_unavailable(const Result<AppendResult>& r) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::unavailable) << r.error().message;
  }

  static std::vector<std::string> ids_of(const std::vector<FailingBackend::Row>& rows) {
    std::vector<std::string> ids;
    for (const auto& r : rows) ids.push_back(r.event_id);
    return ids;
  }

  FailingBackend backend_;
  AppendPipeline pipeline_;
};

TEST_F(AppendPipelineRecovery, FailedWriteFailsItsBatchAndEveryAppendBehindItThenWritesResume) {
  auto first = append(request("s", ExpectedVersion::no_stream(), {"a"}));
  ASSERT_TRUE(first);
  ASSERT_EQ(first->position, 1);

  // b's batch is held in write_batch while c and d queue behind it, validated against
  // the version b leaves.
  backend_.hold_writes(true);
  backend_.fail_writes(1);
  auto b = append_async(request("s", ExpectedVersion::exact(StreamVersion{0}), {"b"}));
  backend_.await(2, &FailingBackend::writes_);
  auto c = append_async(request("s", ExpectedVersion::exact(StreamVersion{1}), {"c"}));
  auto d = append_async(request("t", ExpectedVersion::no_stream(), {"d"}));
  backend_.hold_writes(false);
  expect_unavailable(b.get());
  expect_unavailable(c.get());
  expect_unavailable(d.get());

  ASSERT_TRUE(recovered());
  // Versions and positions continue from what is durable, as if b, c, d never were.
  auto conflict = append(request("s", ExpectedVersion::exact(StreamVersion{1}), {"e"}));
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, Errc::version_conflict);
  auto e = append(request("s", ExpectedVersion::exact(StreamVersion{0}), {"e"}));
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->version, 1);
  EXPECT_EQ(e->position, 2);
  // d's id was never stored: appending it again is a new append, not a duplicate.
  auto d_again = append(request("t", ExpectedVersion::no_stream(), {"d"}));
  ASSERT_TRUE(d_again) << d_again.error().message;
  EXPECT_EQ(d_again->version, 0);
  EXPECT_EQ(d_again->position, 3);
  EXPECT_EQ(ids_of(backend_.rows()), (std::vector<std::string>{"a", "e", "d"}));
  EXPECT_EQ(pipeline_.last_committed(), 3);
}

TEST_F(AppendPipelineRecovery, MetricsCountOutcomesBatchesWritesAndSyncs) {
  auto& m = append_metrics();
  auto count = [&m](std::string_view outcome) { return m.appends.at(outcome).value(); };
  const auto written = count("written"), conflicts = count("version_conflict"), repeats = count("repeat"),
             batches = m.batch_appends.snapshot().count, syncs = m.sync_seconds.snapshot().count,
             writes = m.write_seconds.snapshot().count;

  ASSERT_TRUE(append(request("s", ExpectedVersion::no_stream(), {"a"})));
  ASSERT_FALSE(append(request("s", ExpectedVersion::no_stream(), {"b"})));  // the stream is at 0
  auto again = append(request("s", ExpectedVersion::no_stream(), {"a"}));   // a retry of the first
  ASSERT_TRUE(again);
  ASSERT_FALSE(again->written);

  EXPECT_EQ(count("written") - written, 1u);
  EXPECT_EQ(count("version_conflict") - conflicts, 1u);
  EXPECT_EQ(count("repeat") - repeats, 1u);
  EXPECT_EQ(m.batch_appends.snapshot().count - batches, 1u);
  EXPECT_EQ(m.write_seconds.snapshot().count - writes, 1u);
  EXPECT_EQ(m.sync_seconds.snapshot().count - syncs, 1u);
}

TEST_F(AppendPipelineRecovery, FailedSyncRemovesTheCommittedBatchAndWritesResume) {
  ASSERT_TRUE(append(request("s", ExpectedVersion::no_stream(), {"a"})));
  backend_.fail_syncs(1);
  // The batch committed (the backend holds it) but was never durable: it fails, and
  // recovery removes it.
  expect_unavailable(append(request("s", ExpectedVersion::exact(StreamVersion{0}), {"b", "c"})));
  ASSERT_TRUE(recovered());
  EXPECT_EQ(ids_of(backend_.rows()), (std::vector<std::string>{"a"}));
  auto retried = append(request("s", ExpectedVersion::exact(StreamVersion{0}), {"b", "c"}));
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_EQ(retried->version, 2);
  EXPECT_EQ(retried->position, 3);
  EXPECT_EQ(ids_of(backend_.rows()), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(AppendPipelineRecovery, BatchWrittenBeforeAFailedOneStands) {
  // x's batch is written and then held in its sync; y's batch, written meanwhile, fails.
  backend_.hold_syncs(true);
  auto x = append_async(request("s", ExpectedVersion::no_stream(), {"x"}));
  backend_.await(1, &FailingBackend::syncs_started_);
  backend_.fail_writes(1);
  auto y = append_async(request("s", ExpectedVersion::exact(StreamVersion{0}), {"y"}));
  expect_unavailable(y.get());
  backend_.hold_syncs(false);
  auto x_result = x.get();
  ASSERT_TRUE(x_result) << x_result.error().message;
  EXPECT_EQ(x_result->position, 1);
  ASSERT_TRUE(recovered());
  auto z = append(request("s", ExpectedVersion::exact(StreamVersion{0}), {"z"}));
  ASSERT_TRUE(z) << z.error().message;
  EXPECT_EQ(z->position, 2);
  EXPECT_EQ(ids_of(backend_.rows()), (std::vector<std::string>{"x", "z"}));
}

TEST_F(AppendPipelineRecovery, RefusesAppendsAtOnceUntilTheBackendCanWriteAgain) {
  backend_.fail_recovers(1000);
  backend_.fail_writes(1);
  expect_unavailable(append(request("s", ExpectedVersion::no_stream(), {"a"})));
  ASSERT_TRUE(pipeline_.write_failure());
  // Refused without reaching the backend.
  const int writes = backend_.writes();
  expect_unavailable(append(request("s", ExpectedVersion::no_stream(), {"b"})));
  EXPECT_EQ(backend_.writes(), writes);
  // It keeps trying, backing off: 100, 200, 400 ms...
  std::this_thread::sleep_for(800ms);
  const int tries = backend_.recovers();
  EXPECT_GE(tries, 2);
  EXPECT_LE(tries, 4);
  backend_.fail_recovers(0);
  ASSERT_TRUE(recovered(3s));
  auto c = append(request("s", ExpectedVersion::no_stream(), {"c"}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->position, 1);
}

// Fail-stop after a failed sync (leveldb's DBImpl::Write): the batches written behind the
// one being synced were built on it, so they fail with it; later appends are refused at once,
// without reaching the backend, until recover() has succeeded.
TEST_F(AppendPipelineRecovery, AFailedSyncFailsTheBatchesBehindItAndRefusesAppendsUntilRecovered) {
  ASSERT_TRUE(append(request("s", ExpectedVersion::no_stream(), {"a"})));
  backend_.hold_syncs(true);
  backend_.fail_syncs(1);
  backend_.fail_recovers(1000);
  auto b = append_async(request("s", ExpectedVersion::exact(StreamVersion{0}), {"b"}));
  backend_.await(2, &FailingBackend::syncs_started_);  // b's batch is in its sync, held
  auto c = append_async(request("s", ExpectedVersion::exact(StreamVersion{1}), {"c"}));
  backend_.await(3, &FailingBackend::writes_);          // c's batch is written behind it
  backend_.hold_syncs(false);
  expect_unavailable(b.get());
  expect_unavailable(c.get());
  ASSERT_TRUE(pipeline_.write_failure());
  EXPECT_EQ(pipeline_.last_committed(), 1);

  const int writes = backend_.writes();
  auto refusal = append_async(request("t", ExpectedVersion::any(), {"d"}));
  ASSERT_EQ(refusal.wait_for(0s), std::future_status::ready) << "not refused at once";
  auto refused = refusal.get();
  expect_unavailable(refused);
  EXPECT_NE(refused.error().message.find("refused"), std::string::npos) << refused.error().message;
  EXPECT_EQ(backend_.writes(), writes) << "an append reached the backend before it recovered";

  backend_.fail_recovers(0);
  ASSERT_TRUE(recovered(3s));
  // What b and c left was removed; versions and positions continue from a.
  EXPECT_EQ(ids_of(backend_.rows()), (std::vector<std::string>{"a"}));
  auto e = append(request("s", ExpectedVersion::exact(StreamVersion{0}), {"e"}));
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->version, 1);
  EXPECT_EQ(e->position, 2);
}

TEST_F(AppendPipelineRecovery, StopsWhileRecovering) {
  backend_.fail_recovers(1000);
  backend_.fail_writes(1);
  expect_unavailable(append(request("s", ExpectedVersion::no_stream(), {"a"})));
  pipeline_.stop();
  expect_unavailable(append(request("s", ExpectedVersion::no_stream(), {"b"})));
}

// ---- group commit

// Appends that arrive while a batch is being written wait in the open batch and are
// written together, in one transaction and one sync; with group commit off, each is
// written and synced alone. (Shown on the batches the backend is given, not assumed
// from a rate.)
void append_while_a_write_is_held(bool group_commit, std::vector<std::size_t> expected_batches) {
  auto& metrics = append_metrics();
  const auto batches_before = metrics.batch_appends.snapshot(), syncs_before = metrics.sync_seconds.snapshot();
  FailingBackend backend;
  AppendPipelineOptions options;
  options.group_commit = group_commit;
  AppendPipeline pipeline(backend, options, [] { return std::int64_t{0}; });
  ASSERT_TRUE(pipeline.start());
  backend.hold_writes(true);
  std::vector<std::future<Result<AppendResult>>> answers;
  auto append = [&](const StreamId& stream) {
    auto promise = std::make_shared<std::promise<Result<AppendResult>>>();
    answers.push_back(promise->get_future());
    pipeline.append(request(stream, ExpectedVersion::no_stream(), {"id-" + stream.str()}),
                    [promise](Result<AppendResult> r) { promise->set_value(std::move(r)); });
  };
  append("first");
  backend.await(1, &FailingBackend::writes_);  // the first batch is in write_batch, held
  for (int i = 0; i < 20; ++i) append(StreamId("s" + std::to_string(i)));
  backend.hold_writes(false);
  std::set<Position> positions;
  for (auto& a : answers) {
    auto r = a.get();
    ASSERT_TRUE(r) << r.error().message;
    positions.insert(r->position);
  }
  EXPECT_EQ(positions.size(), 21u);
  EXPECT_EQ(*positions.rbegin(), 21);
  EXPECT_EQ(backend.batch_sizes(), expected_batches);
  // Every batch synced once: group commit syncs what was written meanwhile together (the
  // first batch alone, or with the second); without it, each append has a sync of its own.
  const auto syncs = backend.sync_calls();
  std::size_t synced = 0;
  for (auto n : syncs) synced += n;
  EXPECT_EQ(synced, expected_batches.size());
  if (!group_commit) {
    EXPECT_EQ(syncs, std::vector<std::size_t>(expected_batches.size(), 1));
  }
  // The pipeline's counters say the same (/metrics: batches and the appends in them, syncs).
  const auto batches = metrics.batch_appends.snapshot();
  EXPECT_EQ(batches.count - batches_before.count, expected_batches.size());
  EXPECT_DOUBLE_EQ(batches.sum - batches_before.sum, 21.0);
  EXPECT_EQ(metrics.sync_seconds.snapshot().count - syncs_before.count, syncs.size());
  pipeline.stop();
}

TEST(AppendPipelineGroupCommit, AppendsArrivingDuringAWriteAreWrittenAsOneBatch) {
  append_while_a_write_is_held(true, {1, 20});
}

TEST(AppendPipelineGroupCommit, WithGroupCommitOffEachAppendIsABatchOfItsOwn) {
  append_while_a_write_is_held(false, std::vector<std::size_t>(21, 1));
}

// The versions kept in memory (stream_cache_limit): past the limit the least recently
// appended half is dropped, so streams in use are not read back from the store.
TEST(AppendPipelineStreamCache, KeepsTheMostRecentlyAppendedStreamsWhenFull) {
  FailingBackend backend;
  AppendPipelineOptions options;
  options.stream_cache_limit = 4;
  AppendPipeline pipeline(backend, options, [] { return std::int64_t{0}; });
  ASSERT_TRUE(pipeline.start());
  auto append = [&](const std::string& stream, ExpectedVersion expected, const std::string& id) {
    std::promise<Result<AppendResult>> promise;
    auto answer = promise.get_future();
    pipeline.append(request(StreamId(stream), expected, {id}),
                    [&promise](Result<AppendResult> r) { promise.set_value(std::move(r)); });
    auto r = answer.get();
    ASSERT_TRUE(r) << r.error().message;
  };
  for (int i = 0; i < 4; ++i) append("s" + std::to_string(i), ExpectedVersion::no_stream(), "a" + std::to_string(i));
  EXPECT_EQ(backend.version_reads(), 4);  // each new stream asked once
  append("s0", ExpectedVersion::exact(StreamVersion{0}), "b0");
  append("s1", ExpectedVersion::exact(StreamVersion{0}), "b1");
  EXPECT_EQ(backend.version_reads(), 4);  // known
  // A fifth stream: five kept, over the limit; the two appended last stay.
  append("s4", ExpectedVersion::no_stream(), "a4");
  EXPECT_EQ(backend.version_reads(), 5);
  append("s1", ExpectedVersion::exact(StreamVersion{1}), "c1");
  append("s4", ExpectedVersion::exact(StreamVersion{0}), "b4");
  EXPECT_EQ(backend.version_reads(), 5);
  // The others were dropped: read again, and right.
  append("s0", ExpectedVersion::exact(StreamVersion{1}), "c0");
  append("s2", ExpectedVersion::exact(StreamVersion{0}), "b2");
  EXPECT_EQ(backend.version_reads(), 7);
  pipeline.stop();
}

// ---- a shared backend (other processes write too)

// An in-memory database other processes write to (`other_writes`); write_batch checks and
// numbers against it; a sync waits until the test opens the gate.
class SharedDatabase final : public AppendBackend {
 public:
  Result<void> write_batch(std::vector<StagedAppend>& batch) override {
    std::unique_lock lk(mu_);
    ++writes_begun_;
    gate_cv_.notify_all();
    gate_cv_.wait(lk, [&] { return !hold_writes_; });
    batch_sizes_.push_back(batch.size());
    ChainGuard chain(true);  // nothing here rolls back
    for (auto& a : batch) {
      auto& version = streams_.try_emplace(a.request.stream_id, kNoStream).first->second;
      if (!chain.admits(a) || !a.request.expected.matches(version)) {
        a.answer = fail(version_conflict(a.request.stream_id, version, a.request.expected));
      } else {
        a.first_version = version + 1;
        a.first_position = head_ + 1;
        version += static_cast<std::int64_t>(a.request.events.size());
        head_ += static_cast<std::int64_t>(a.request.events.size());
      }
      chain.decided(a);
    }
    return {};
  }
  std::vector<std::size_t> batch_sizes() {
    std::lock_guard lk(mu_);
    return batch_sizes_;
  }
  Result<void> sync(std::size_t) override {
    std::unique_lock lk(mu_);
    gate_cv_.wait(lk, [&] { return open_; });
    if (fail_syncs_ > 0) {
      --fail_syncs_;
      return fail(Errc::unavailable, "COMMIT: server closed the connection (injected)");
    }
    return {};
  }
  void fail_syncs(int n) {
    std::lock_guard lk(mu_);
    fail_syncs_ = n;
  }
  void other_writes(const StreamId& stream, StreamVersion to) {
    std::lock_guard lk(mu_);
    head_ += to - streams_.try_emplace(stream, kNoStream).first->second;
    streams_[stream] = to;
  }
  void open_gate() {
    {
      std::lock_guard lk(mu_);
      open_ = true;
    }
    gate_cv_.notify_all();
  }
  // Holds write_batch before it numbers anything, until released.
  void hold_writes(bool on) {
    {
      std::lock_guard lk(mu_);
      hold_writes_ = on;
    }
    gate_cv_.notify_all();
  }
  void await_writes_begun(int n) {
    std::unique_lock lk(mu_);
    ASSERT_TRUE(gate_cv_.wait_for(lk, 5s, [&] { return writes_begun_ >= n; }));
  }

 private:
  std::mutex mu_;
  std::condition_variable gate_cv_;
  bool open_ = false, hold_writes_ = false;
  int writes_begun_ = 0, fail_syncs_ = 0;
  std::vector<std::size_t> batch_sizes_;
  std::map<StreamId, StreamVersion> streams_;
  Position head_{0};
};

// This process's append to a stream is written but not yet known durable, and another
// process appends after it: a caller that has read the stream as the other left it must
// not be refused by what memory knows of this process's own append (it named the older
// version as current, and the caller, deciding again on the store, was refused again until
// its retries ran out: an HTTP 409 on PostgreSQL with two servers).
TEST(AppendPipelineShared, AnAppendExpectingAVersionNewerThanMemoryKnowsGoesToTheDatabase) {
  SharedDatabase db;
  AppendPipeline pipeline(db, {}, [] { return std::int64_t{0}; });
  ASSERT_TRUE(pipeline.start());
  db.other_writes("s", StreamVersion{5});
  std::promise<Result<AppendResult>> first_answer, second_answer;
  pipeline.append(request("s", ExpectedVersion::exact(StreamVersion{5}), {"ours"}),
                  [&](Result<AppendResult> r) { first_answer.set_value(std::move(r)); });
  db.await_writes_begun(1);  // written at version 6 (write_batch has returned); its sync waits at the gate
  db.other_writes("s", StreamVersion{11});      // committed after it, by another process
  pipeline.append(request("s", ExpectedVersion::exact(StreamVersion{11}), {"after-theirs"}),
                  [&](Result<AppendResult> r) { second_answer.set_value(std::move(r)); });
  db.open_gate();
  auto a = first_answer.get_future().get();
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->version, 6);
  auto b = second_answer.get_future().get();
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->version, 12);
  // A caller behind this process's own append is still refused at once, naming it.
  db.other_writes("s", StreamVersion{12});
  auto behind = std::async(std::launch::async, [&] {
    std::promise<Result<AppendResult>> p;
    pipeline.append(request("s", ExpectedVersion::exact(StreamVersion{3}), {"late"}), [&](Result<AppendResult> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }).get();
  ASSERT_FALSE(behind);
  EXPECT_EQ(behind.error().code, Errc::version_conflict);
  pipeline.stop();
}

// Appends `first` and, while the database holds it before numbering it, `second`, both
// to stream s, whose version other processes have moved to `others_left` first.
struct FirstHeldThenSecond {
  SharedDatabase db;
  AppendPipeline pipeline{db, {}, [] { return std::int64_t{0}; }};
  std::promise<Result<AppendResult>> first, second;

  FirstHeldThenSecond(StreamVersion others_left, ExpectedVersion first_expects, ExpectedVersion second_expects) {
    db.open_gate();
    if (!pipeline.start()) throw std::runtime_error("pipeline did not start");
    if (others_left != kNoStream) db.other_writes("s", others_left);
    db.hold_writes(true);
    pipeline.append(request("s", first_expects, {"a"}), [this](Result<AppendResult> r) { first.set_value(std::move(r)); });
    db.await_writes_begun(1);
    pipeline.append(request("s", second_expects, {"b"}), [this](Result<AppendResult> r) { second.set_value(std::move(r)); });
  }
  ~FirstHeldThenSecond() { pipeline.stop(); }
};

// Two appends of this process to one stream, the second expecting what the first
// replaces: while the first is not numbered yet, the second is parked (not refused on a
// guess, not sent to the database to lose there), then answered with the version the first
// left, so its caller decides again on that.
TEST(AppendPipelineShared, AConflictWithAnUnnumberedAppendIsParkedUntilItIsNumbered) {
  FirstHeldThenSecond run(kNoStream, ExpectedVersion::no_stream(), ExpectedVersion::no_stream());
  auto second = run.second.get_future();
  EXPECT_EQ(second.wait_for(50ms), std::future_status::timeout) << "answered before the first was numbered";
  run.db.hold_writes(false);
  auto a = run.first.get_future().get();
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->version, 0);
  auto b = second.get();
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::version_conflict);
  EXPECT_EQ(b.error().current_version, 0);
}

// The first append loses in the database (another process wrote the stream): memory no
// longer knows the stream's version, so the parked append goes to the database, which
// accepts it.
TEST(AppendPipelineShared, AParkedAppendGoesToTheDatabaseOnceMemoryNoLongerKnowsTheVersion) {
  FirstHeldThenSecond run(StreamVersion{3}, ExpectedVersion::no_stream(), ExpectedVersion::exact(StreamVersion{3}));
  run.db.hold_writes(false);
  auto a = run.first.get_future().get();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::version_conflict);
  auto b = run.second.get_future().get();
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->version, 4);
}

// A shared backend's failed batch answers its own appends unavailable (their outcome is
// unknown: a retry with the same event ids learns it) and nothing else: no fail-stop, the
// next append is written (other processes may have written meanwhile; memory built nothing
// on the failed batch).
TEST(AppendPipelineShared, AFailedBatchFailsOnlyItsOwnAppendsAndTheNextIsWritten) {
  SharedDatabase db;
  AppendPipeline pipeline(db, {}, [] { return std::int64_t{0}; });
  ASSERT_TRUE(pipeline.start());
  db.open_gate();
  db.fail_syncs(1);
  std::promise<Result<AppendResult>> first, second;
  pipeline.append(request("s", ExpectedVersion::no_stream(), {"a"}),
                  [&](Result<AppendResult> r) { first.set_value(std::move(r)); });
  auto a = first.get_future().get();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::unavailable);
  EXPECT_NE(a.error().message.find("same event ids"), std::string::npos) << a.error().message;
  EXPECT_FALSE(pipeline.write_failure());
  // The database numbered a (and kept it, here): memory does not guess, the database decides.
  pipeline.append(request("s", ExpectedVersion::exact(StreamVersion{0}), {"b"}),
                  [&](Result<AppendResult> r) { second.set_value(std::move(r)); });
  auto b = second.get_future().get();
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->version, 1);
  EXPECT_EQ(pipeline.last_committed(), 2);
  pipeline.stop();
}

// Commands on one hot stream of a shared store: the pipeline tells an append expecting an
// exact version its state as it accepts it, so the next command decides on that state and
// joins the same batch behind it (chained), rather than one command per batch.
struct ChainBehindAHeldBatch {
  SharedDatabase db;
  AppendPipeline pipeline{db, {}, [] { return std::int64_t{0}; }};
  std::vector<std::promise<Result<AppendResult>>> answers = std::vector<std::promise<Result<AppendResult>>>(8);
  std::vector<std::optional<StreamVersion>> told = std::vector<std::optional<StreamVersion>>(8);
  std::vector<std::uint64_t> marks = std::vector<std::uint64_t>(8);  // of the states told
  int next = 0;

  ChainBehindAHeldBatch() {
    db.open_gate();
    if (!pipeline.start()) throw std::runtime_error("pipeline did not start");
    db.hold_writes(true);
  }
  ~ChainBehindAHeldBatch() { pipeline.stop(); }
  // Appends to `stream`, decided on the pending state marked `decided_on` (0: on a
  // committed one); its on_staged, if called during append(), is recorded.
  int append(std::string_view stream, ExpectedVersion expected, std::uint64_t decided_on = 0) {
    const int i = next++;
    auto req = request(StreamId(stream), expected, {std::string(stream) + std::to_string(i)});
    req.decided_on_pending = decided_on;
    auto appending = std::make_shared<bool>(true);
    req.on_staged = [this, i, appending](const AppendResult& r) {
      if (!*appending) return;
      told[static_cast<std::size_t>(i)] = r.version;
      marks[static_cast<std::size_t>(i)] = r.pending_mark;
    };
    pipeline.append(std::move(req), [this, i](Result<AppendResult> r) { answers[static_cast<std::size_t>(i)].set_value(std::move(r)); });
    *appending = false;
    return i;
  }
  Result<AppendResult> answer(int i) { return answers[static_cast<std::size_t>(i)].get_future().get(); }
};

TEST(AppendPipelineShared, CommandsOnOneStreamAreToldTheirStateAtOnceAndShareABatch) {
  ChainBehindAHeldBatch run;
  run.append("t", ExpectedVersion::no_stream());  // the writer holds this one's batch
  run.db.await_writes_begun(1);
  const int a = run.append("s", ExpectedVersion::no_stream());
  const int b = run.append("s", ExpectedVersion::exact(StreamVersion{0}));
  const int c = run.append("s", ExpectedVersion::exact(StreamVersion{1}));
  EXPECT_EQ(run.told[static_cast<std::size_t>(a)], StreamVersion{0});
  EXPECT_EQ(run.told[static_cast<std::size_t>(b)], StreamVersion{1});
  EXPECT_EQ(run.told[static_cast<std::size_t>(c)], StreamVersion{2});
  run.db.hold_writes(false);
  for (int i : {a, b, c}) {
    auto r = run.answer(i);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->version, i - a);
  }
  EXPECT_EQ(run.db.batch_sizes(), (std::vector<std::size_t>{1, 3}));
}

// Another process made the stream first: the first append loses in the database, and the
// one decided behind it must lose too, though the database's version is the one it
// expects (it was decided on a state that never existed).
TEST(AppendPipelineShared, AnAppendDecidedBehindOneRefusedInItsBatchIsRefusedToo) {
  ChainBehindAHeldBatch run;
  run.append("t", ExpectedVersion::no_stream());
  run.db.await_writes_begun(1);
  run.db.other_writes("s", StreamVersion{0});
  const int a = run.append("s", ExpectedVersion::no_stream());
  const int b = run.append("s", ExpectedVersion::exact(StreamVersion{0}));
  run.db.hold_writes(false);
  for (int i : {a, b}) {
    auto r = run.answer(i);
    ASSERT_FALSE(r) << "append " << i << " written at version " << r->version;
    EXPECT_EQ(r.error().code, Errc::version_conflict);
  }
}

// The same across batches: the first append's batch is being written when the second is
// decided behind it; refused there, the second is refused before it is written.
TEST(AppendPipelineShared, AnAppendDecidedBehindOneRefusedInAnEarlierBatchIsRefusedToo) {
  ChainBehindAHeldBatch run;
  const int a = run.append("s", ExpectedVersion::no_stream());
  run.db.await_writes_begun(1);
  const int b = run.append("s", ExpectedVersion::exact(StreamVersion{0}));
  EXPECT_EQ(run.told[static_cast<std::size_t>(b)], StreamVersion{1});
  run.db.other_writes("s", StreamVersion{0});  // before the held write checks a
  run.db.hold_writes(false);
  for (int i : {a, b}) {
    auto r = run.answer(i);
    ASSERT_FALSE(r) << "append " << i << " written at version " << r->version;
    EXPECT_EQ(r.error().code, Errc::version_conflict);
  }
  // Memory does not guess after that: an append expecting what the database holds is written.
  const int c = run.append("s", ExpectedVersion::exact(StreamVersion{0}));
  auto r = run.answer(c);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->version, 1);
}

// A refused guess and a later append of this process can leave one version with two
// states: a command decided on the guess must not be written behind the later append
// though its version matches memory's (its state never existed: found by an operator
// check, two servers depositing into one account, a snapshot that was not its fold).
TEST(AppendPipelineShared, AnAppendDecidedOnARefusedGuessIsRefusedThoughALaterAppendLeftItsVersion) {
  ChainBehindAHeldBatch run;
  const int a = run.append("s", ExpectedVersion::no_stream());
  run.db.await_writes_begun(1);
  const int b = run.append("s", ExpectedVersion::exact(StreamVersion{0}), run.marks[0]);
  ASSERT_EQ(run.told[static_cast<std::size_t>(b)], StreamVersion{1});
  const auto guess = run.marks[static_cast<std::size_t>(b)];  // the state b leaves: a guess
  run.db.other_writes("s", StreamVersion{0});  // another process made the stream first
  run.db.hold_writes(false);
  for (int i : {a, b}) ASSERT_FALSE(run.answer(i));
  // Decided on the store as the other process left it, and held in flight: memory is at
  // version 1 again, by this append.
  run.db.hold_writes(true);
  const int c = run.append("s", ExpectedVersion::exact(StreamVersion{0}));
  run.db.await_writes_begun(2);  // b never reached the database: refused with a
  ASSERT_EQ(run.told[static_cast<std::size_t>(c)], StreamVersion{1});
  ASSERT_NE(run.marks[static_cast<std::size_t>(c)], guess);
  // Decided on b's state, which never existed.
  const int d = run.append("s", ExpectedVersion::exact(StreamVersion{1}), guess);
  const int e = run.append("s", ExpectedVersion::exact(StreamVersion{1}), run.marks[static_cast<std::size_t>(c)]);
  run.db.hold_writes(false);
  auto written = run.answer(c);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(written->version, 1);
  auto refused = run.answer(d);
  ASSERT_FALSE(refused) << "written at version " << refused->version;
  EXPECT_EQ(refused.error().code, Errc::version_conflict);
  auto behind = run.answer(e);  // decided on c's state: right behind it
  ASSERT_TRUE(behind) << behind.error().message;
  EXPECT_EQ(behind->version, 2);
}

}  // namespace
}  // namespace orderflow::es
