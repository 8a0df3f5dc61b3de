#include "es/append_pipeline.h"

#include <algorithm>
#include <future>

#include "core/evict.h"
#include "core/failures.h"
#include "core/named_thread.h"
#include "es/append_metrics.h"

namespace orderflow::es {

namespace {

// fn(), its duration observed in `h` (seconds).
template <class H, class Fn>
auto timed(H& h, Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  auto r = fn();
  h.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return r;
}

Result<void> check_request_shape(const AppendRequest& req) {
  if (req.stream_id.empty()) return fail(Errc::invalid_argument, "stream_id must not be empty");
  if (req.events.empty()) return fail(Errc::invalid_argument, "an append needs at least one event");
  for (const auto& e : req.events) {
    if (e.event_id.empty()) return fail(Errc::invalid_argument, "every event needs an event_id");
    if (e.type.empty()) return fail(Errc::invalid_argument, "every event needs a type");
  }
  for (std::size_t i = 0; i < req.events.size(); ++i)
    for (std::size_t j = i + 1; j < req.events.size(); ++j)
      if (req.events[i].event_id == req.events[j].event_id)
        return fail(Errc::invalid_argument, "event ids within one append must differ");
  return {};
}

bool same_ids(const std::vector<NewEvent>& events, const std::vector<std::string>& ids) {
  if (events.size() != ids.size()) return false;
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (events[i].event_id != ids[i]) return false;
  return true;
}

}  // namespace

std::optional<Result<AppendResult>> match_stored(const AppendRequest& req,
                                                 const std::vector<std::optional<StoredEventRef>>& stored) {
  OF_CHECK(stored.size() == req.events.size(), "match_stored needs one lookup per event");
  auto first_found = std::find_if(stored.begin(), stored.end(), [](const auto& s) { return s.has_value(); });
  if (first_found == stored.end()) return std::nullopt;
  auto i = static_cast<std::size_t>(first_found - stored.begin());
  const auto& ref = **first_found;
  auto duplicate = fail(Errc::duplicate_event, "event " + req.events[i].event_id + " is already stored in " +
                                                   ref.stream_id.str() + " at version " + to_string(ref.version));
  // A retry stored every one of its events, in order, in its own stream. Event ids are
  // unique, so that is the same as the stream holding exactly these ids from there on.
  for (std::size_t j = 0; j < stored.size(); ++j) {
    const auto& s = stored[j];
    if (!s || s->stream_id != req.stream_id || s->version != stored[0]->version + static_cast<std::int64_t>(j))
      return duplicate;
  }
  return AppendResult{stored.back()->version, stored.back()->position, false};
}

Error version_conflict(const StreamId& stream_id, StreamVersion current, const ExpectedVersion& expected) {
  return Error{Errc::version_conflict,
               "stream " + stream_id.str() + " is at version " + to_string(current) + ", expected " +
                   expected.describe(),
               current};
}

Result<void> AppendPipeline::timed_sync(std::size_t batches) {
  return timed(append_metrics().sync_seconds, [&] { return backend_.sync(batches); });
}

AppendPipeline::AppendPipeline(ExclusiveAppendBackend& backend, AppendPipelineOptions options, Clock clock)
    : backend_(backend), exclusive_(&backend), options_(options), clock_(std::move(clock)) {}

AppendPipeline::AppendPipeline(AppendBackend& shared_backend, AppendPipelineOptions options, Clock clock)
    : backend_(shared_backend), exclusive_(nullptr), options_(options), clock_(std::move(clock)) {}

AppendPipeline::~AppendPipeline() { stop(); }

Result<void> AppendPipeline::start() {
  MutexLock lk(mu_);
  OF_CHECK(!started_, "AppendPipeline started twice");
  if (exclusive_) {
    OF_ASSIGN_OR_RETURN(auto last, exclusive_->committed_last_position());
    last_committed_ = last;
    next_position_ = last + 1;
  }
  started_ = true;
  writer_ = named_thread("of-writer", [this] { writer_loop(); });
  syncer_ = named_thread("of-sync", [this] { sync_loop(); });
  return {};
}

void AppendPipeline::stop() {
  {
    MutexLock lk(mu_);
    if (!started_ || stopping_) return;
    stopping_ = true;
  }
  writer_cv_.notify_all();
  committed_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (syncer_.joinable()) syncer_.join();
  MutexLock lk(mu_);
  OF_CHECK(open_.empty() && unsynced_.empty() && in_flight_.empty() && in_flight_ids_.empty() &&
               in_flight_keys_.empty(),
           "the append pipeline stopped with appends not answered");
}

Position AppendPipeline::last_committed() const {
  MutexLock lk(mu_);
  return last_committed_;
}

bool AppendPipeline::wait_for_commit(Position after, std::chrono::milliseconds timeout) {
  MutexLock lk(mu_);
  committed_cv_.wait_for(mu_, timeout, [&]() REQUIRES(mu_) { return last_committed_ > after || stopping_; });
  return last_committed_ > after;
}

void AppendPipeline::await_key(const std::string& key) {
  std::promise<void> answered;
  {
    MutexLock lk(mu_);
    auto it = in_flight_keys_.find(key);
    if (it == in_flight_keys_.end()) return;
    // Answered with the reusers of the key, after the append that holds it (settle()).
    it->second.push_back([&answered](const Result<AppendResult>&) { answered.set_value(); });
  }
  answered.get_future().wait();
}

Result<StreamVersion> AppendPipeline::current_version(const AppendRequest& req) {
  const auto& stream_id = req.stream_id;
  if (auto it = streams_.find(stream_id); it != streams_.end()) return it->second.version;
  auto committed = req.fresh_stream_id ? Result<StreamVersion>(kNoStream) : exclusive_->committed_version(stream_id);
  if (!committed) return committed;
  streams_.emplace(stream_id, StreamEntry{*committed, 0});
  return committed;
}

// A retry of an append that is in flight waits for the same answer.
bool AppendPipeline::attach_retry(const AppendRequest& req, AppendCallback& done) {
  auto it = in_flight_.find(req.events.front().event_id);
  if (it == in_flight_.end() || it->second.stream_id != req.stream_id || !same_ids(req.events, it->second.event_ids))
    return false;
  it->second.followers.push_back(std::move(done));
  return true;
}

// Event ids in flight in another append are a duplicate_event error.
std::optional<Result<AppendResult>> AppendPipeline::in_flight_duplicate(const AppendRequest& req) const {
  for (const auto& e : req.events)
    if (in_flight_ids_.count(e.event_id))
      return fail(Errc::duplicate_event, "event " + e.event_id + " is already being appended elsewhere");
  return std::nullopt;
}

// Exclusive backends: a retry of a committed append is answered with the original
// result; event ids stored anywhere else are a duplicate_event error.
std::optional<Result<AppendResult>> AppendPipeline::check_stored(const AppendRequest& req) {
  std::vector<std::optional<StoredEventRef>> stored;
  stored.reserve(req.events.size());
  for (const auto& e : req.events) {
    auto found = exclusive_->find_event(e.event_id);
    if (!found) return Result<AppendResult>(found.error());
    stored.push_back(std::move(*found));
  }
  return match_stored(req, stored);
}

void AppendPipeline::append(AppendRequest req, AppendCallback counted) {
  AppendCallback done = [counted = std::move(counted)](Result<AppendResult> r) {
    append_metrics().appends.at(append_outcome(r)).add();
    counted(std::move(r));
  };
  if (auto shape = check_request_shape(req); !shape) return done(fail(shape.error()));

  std::optional<Result<AppendResult>> answer;
  {
    MutexLock lk(mu_);
    if (failed_) {
      answer = fail(*failed_);
    } else if (stopping_ || !started_) {
      answer = fail(Errc::unavailable, "the event store is shutting down");
    } else if (!req.fresh_event_ids) {
      if (attach_retry(req, done)) return;
      answer = in_flight_duplicate(req);
      if (!answer && exclusive_) answer = check_stored(req);
    }
    // A retry of a stored append was answered above; a new append may not reuse a key.
    if (!answer && req.idempotency) {
      if (auto it = in_flight_keys_.find(req.idempotency->key); it != in_flight_keys_.end()) {
        it->second.push_back(std::move(done));
        return;
      }
      if (exclusive_) {
        auto exists = exclusive_->idempotency_key_exists(req.idempotency->key);
        if (!exists)
          answer = fail(exists.error());
        else if (*exists)
          answer = fail(Errc::idempotency_key_reused, "idempotency key was already used");
      }
    }
    if (!answer && !exclusive_) {
      auto it = streams_.find(req.stream_id);
      if (req.decided_on_pending != 0 &&
          (it == streams_.end() || !it->second.version_known || !req.expected.matches(it->second.version) ||
           it->second.mark != req.decided_on_pending)) {
        // What it was decided on is gone (refused, or landed): a newer version sends the
        // caller to the store.
        const auto decided_on = req.expected.kind() == ExpectedVersion::Kind::exact ? req.expected.version() : kNoStream;
        const auto named = it != streams_.end() && it->second.version > decided_on ? it->second.version : decided_on + 1;
        answer = fail(version_conflict(req.stream_id, named, req.expected));
      } else if (it == streams_.end() || !refutes(it->second, req.expected)) {
        return stage(std::move(req), std::move(done), std::nullopt);
      } else if (it->second.in_flight > 0) {  // see numbered() and settle()
        it->second.parked.emplace_back(std::move(req), std::move(done));
        return;
      } else {
        answer = fail(version_conflict(req.stream_id, it->second.version, req.expected));
      }
    }
    if (!answer) {
      auto current = current_version(req);
      if (!current) {
        answer = fail(current.error());
      } else if (!req.expected.matches(*current)) {
        answer = fail(version_conflict(req.stream_id, *current, req.expected));
      } else {
        return stage(std::move(req), std::move(done), *current);
      }
    }
  }
  done(std::move(*answer));
}

// Queues an accepted append for the writer. `current`: the stream's version it was
// validated against (exclusive backends, which number it now); nullopt for a shared
// backend, whose write_batch numbers it.
void AppendPipeline::stage(AppendRequest req, AppendCallback done, std::optional<StreamVersion> current) {
  StagedAppend staged;
  bool agrees = false;
  staged.recorded_at_ms = clock_();
  if (current) {
    auto n = static_cast<std::int64_t>(req.events.size());
    staged.first_version = *current + 1;
    staged.first_position = next_position_;
    next_position_ += n;
    auto& entry = streams_[req.stream_id];
    entry.version = *current + n;
    entry.mark = ++last_mark_;
    ++entry.in_flight;
  } else {
    // Memory agrees with what it expects: nothing of this process is in flight on the
    // stream, or it expects the version those appends leave. Behind appends not yet
    // numbered, it was decided on their state (their on_staged told it): chained.
    auto it = streams_.find(req.stream_id);
    const bool tracked = it != streams_.end();
    agrees = !tracked || (it->second.version_known && req.expected.matches(it->second.version));
    staged.chained = agrees && tracked && it->second.unnumbered > 0;
    staged.mark = ++last_mark_;
    track_in_flight_version(req, staged.mark);
  }

  InFlight flight{req.stream_id, {}, {}};
  flight.event_ids.reserve(req.events.size());
  for (const auto& e : req.events) {
    flight.event_ids.push_back(e.event_id);
    in_flight_ids_.insert(e.event_id);
  }
  const bool tracked = in_flight_.emplace(req.events.front().event_id, std::move(flight)).second;
  OF_CHECK(tracked, "an append staged while another with its first event id is in flight");
  if (req.idempotency) in_flight_keys_.emplace(req.idempotency->key, std::vector<AppendCallback>{});

  staged.request = std::move(req);
  if (current) {
    auto& key = staged.request.idempotency;
    if (key && staged.request.render_response) key->response = staged.request.render_response(staged.result());
    if (staged.request.on_staged) staged.request.on_staged(staged.result());
  } else if (const auto& expected = staged.request.expected;
             agrees && staged.request.on_staged &&
             (expected.kind() == ExpectedVersion::Kind::exact || expected.kind() == ExpectedVersion::Kind::no_stream)) {
    // Its version is known now, if it is written: the next command on the stream decides
    // on its state and joins this batch behind it (chained), instead of waiting a batch.
    // (Not one memory disagrees with, which the database decides: told early and then
    // refused, it would make its caller drop the state of this process's appends in flight.)
    const auto n = static_cast<std::int64_t>(staged.request.events.size());
    AppendResult told{expected.version() + n, Position{0}};
    told.pending_mark = staged.mark;
    staged.request.on_staged(told);
    staged.told_staged = true;
  }
  staged.done = std::move(done);
  open_.push_back(std::move(staged));
  writer_cv_.notify_one();
}

// Shared backends: whether memory alone can tell that `expected` does not hold. Memory
// knows the version this process's appends in flight leave; another process may have
// appended after them, so a caller expecting a newer version may be right (it read the
// store): the database decides. One expecting an older version is behind this process's
// own appends, which the database has numbered or will number first.
bool AppendPipeline::refutes(const StreamEntry& entry, const ExpectedVersion& expected) {
  if (!entry.version_known || expected.matches(entry.version)) return false;
  switch (expected.kind()) {
    case ExpectedVersion::Kind::exact:
    case ExpectedVersion::Kind::no_stream:
      return expected.version() < entry.version;
    case ExpectedVersion::Kind::any:
    case ExpectedVersion::Kind::stream_exists:
      return true;
  }
  return true;
}

// Shared backends: the version a stream will be at if this process's appends to it in
// flight, the new one last, all succeed.
void AppendPipeline::track_in_flight_version(const AppendRequest& req, std::uint64_t mark) {
  auto n = static_cast<std::int64_t>(req.events.size());
  auto [it, first] = streams_.try_emplace(req.stream_id);
  auto& entry = it->second;
  ++entry.in_flight;
  entry.mark = mark;
  ++entry.unnumbered;
  switch (req.expected.kind()) {
    case ExpectedVersion::Kind::exact:
    case ExpectedVersion::Kind::no_stream:
      entry.version = req.expected.version() + n;
      entry.version_known = true;
      break;
    case ExpectedVersion::Kind::any:
    case ExpectedVersion::Kind::stream_exists:
      entry.version += n;
      entry.version_known = entry.version_known && !first;
      break;
  }
}

// Shared backends, after write_batch (`written`: whether it succeeded): the batch's
// appends are numbered, and their callers have been told the state they leave. Appends
// parked behind them are checked again: staged if they now match (or memory no longer
// knows the stream's version), else answered version_conflict, so that the caller's
// retry decides on the state the conflict names.
void AppendPipeline::numbered(const std::vector<StagedAppend>& batch, bool written, std::vector<Answer>& answers) {
  std::unordered_map<StreamId, StreamVersion> refused;  // streams with an append not written: the version named
  for (const auto& a : batch) {
    auto it = streams_.find(a.request.stream_id);
    if (it == streams_.end()) continue;
    auto& entry = it->second;
    OF_CHECK(entry.unnumbered > 0, "a batch numbered more appends than were waiting to be");
    --entry.unnumbered;
    if (!written || a.answer) {
      entry.version_known = false;  // the database disagreed, or may have
      auto named = a.answer && !*a.answer ? a.answer->error().current_version : std::nullopt;
      refused.try_emplace(a.request.stream_id, named.value_or(entry.version));
    }
  }
  if (!refused.empty()) refuse_chained(refused, answers);
  // Where the database refused one, memory no longer knows the version: the parked go
  // on now (to the database). Elsewhere they wait until the appends they conflict with
  // are answered (settle()), so that their callers decide again on what those left
  // rather than on a store that does not show it yet.
  std::vector<StreamId> ready;
  for (const auto& a : batch) {
    auto it = streams_.find(a.request.stream_id);
    if (it != streams_.end() && it->second.unnumbered == 0 && !it->second.version_known &&
        !it->second.parked.empty())
      ready.push_back(a.request.stream_id);
  }
  for (const auto& stream_id : ready) {
    auto parked = std::move(streams_[stream_id].parked);
    streams_[stream_id].parked.clear();
    for (auto& [req, done] : parked) {
      const auto& entry = streams_[stream_id];
      if (!refutes(entry, req.expected)) {
        stage(std::move(req), std::move(done), std::nullopt);
      } else {
        answers.emplace_back(std::move(done), fail(version_conflict(req.stream_id, entry.version, req.expected)));
      }
    }
  }
}

void AppendPipeline::refuse_chained(const std::unordered_map<StreamId, StreamVersion>& streams,
                                    std::vector<Answer>& answers) {
  for (auto it = open_.begin(); it != open_.end();) {
    auto refused = it->chained ? streams.find(it->request.stream_id) : streams.end();
    if (refused == streams.end()) {
      ++it;
      continue;
    }
    auto entry = streams_.find(it->request.stream_id);
    OF_CHECK(entry != streams_.end() && entry->second.unnumbered > 0, "a chained append waiting without its stream");
    --entry->second.unnumbered;
    settle(*it, fail(version_conflict(it->request.stream_id, refused->second, it->request.expected)), answers);
    it = open_.erase(it);
  }
}

bool ChainGuard::admits(const StagedAppend& a) const {
  if (!a.chained) return true;
  if (unwritten_.count(a.request.stream_id)) return false;
  return earlier_batches_stand_ || written_.count(a.request.stream_id) > 0;
}

void ChainGuard::decided(const StagedAppend& a) {
  if (a.answer)
    unwritten_.insert(a.request.stream_id);
  else if (!earlier_batches_stand_)
    written_.insert(a.request.stream_id);
}

void AppendPipeline::check_counts() const {
  OF_CHECK(in_flight_ids_.size() >= in_flight_.size(), "an append in flight without its event ids");
  OF_CHECK(!exclusive_ || last_committed_ < next_position_, "a position committed before it was assigned");
  OF_CHECK(exclusive_ || !failed_, "a shared backend's pipeline in fail-stop");
  OF_CHECK(!failed_ || failed_from_ > last_committed_, "a failed batch at a position already answered durable");
}

void AppendPipeline::evict_streams() {
  if (streams_.size() <= options_.stream_cache_limit) return;
  evict_least_recent(
      streams_, options_.stream_cache_limit / 2, [](const StreamEntry& e) { return e.in_flight == 0; },
      [](const StreamEntry& e) { return e.mark; });
}

// Drops an answered append's in-flight bookkeeping and queues every answer it owes:
// its own, its retries' (the same outcome) and those of appends that reused its
// idempotency key (told so once the key's record is readable).
void AppendPipeline::settle(StagedAppend& a, const Result<AppendResult>& outcome,
                            std::vector<Answer>& answers) {
  const auto& first_id = a.request.events.front().event_id;
  if (auto it = in_flight_.find(first_id); it != in_flight_.end()) {
    // A follower is a retry: it wrote nothing of its own.
    auto repeat = outcome;
    if (repeat) repeat->written = false;
    for (auto& f : it->second.followers) answers.emplace_back(std::move(f), repeat);
    in_flight_.erase(it);
  }
  for (const auto& e : a.request.events) in_flight_ids_.erase(e.event_id);
  if (a.request.idempotency) {
    if (auto it = in_flight_keys_.find(a.request.idempotency->key); it != in_flight_keys_.end()) {
      for (auto& f : it->second)
        answers.emplace_back(std::move(f),
                             outcome ? Result<AppendResult>(fail(Errc::idempotency_key_reused,
                                                                 "idempotency key was already used"))
                                     : outcome);
      in_flight_keys_.erase(it);
    }
  }
  std::vector<std::pair<AppendRequest, AppendCallback>> parked;
  std::optional<StreamVersion> left;  // the version the stream's appends left, if memory knows it
  if (auto it = streams_.find(a.request.stream_id); it != streams_.end()) {
    OF_CHECK(it->second.in_flight > 0, "an append answered twice, or its stream's count lost");
    if (--it->second.in_flight == 0 && !exclusive_) {
      parked = std::move(it->second.parked);
      if (it->second.version_known && outcome) left = it->second.version;
      streams_.erase(it);
    }
  }
  answers.emplace_back(std::move(a.done), outcome);
  // Shared backends: appends parked behind the stream's appends, now all answered (after
  // them, so their callers find what those left). Memory knowing the version it is at,
  // they are refused naming it; else the database decides.
  for (auto& [req, done] : parked) {
    if (left && !req.expected.matches(*left))
      answers.emplace_back(std::move(done), fail(version_conflict(req.stream_id, *left, req.expected)));
    else
      stage(std::move(req), std::move(done), std::nullopt);
  }
}

void AppendPipeline::writer_loop() {
  std::vector<StagedAppend> batch;
  for (;;) {
    backend_.await_writable();
    {
      MutexLock lk(mu_);
      writer_cv_.wait(mu_, [&]() REQUIRES(mu_) { return !open_.empty() || stopping_ || failed_; });
      if (failed_ && !stopping_) {
        lk.unlock();
        recover();
        continue;
      }
      if (open_.empty()) {  // stopping, and everything accepted is written
        writer_done_ = true;
        sync_cv_.notify_all();
        return;
      }
      std::size_t take = options_.group_commit ? std::min(open_.size(), options_.max_batch) : 1;
      batch.reserve(take);
      for (std::size_t i = 0; i < take; ++i) {
        batch.push_back(std::move(open_.front()));
        open_.pop_front();
      }
    }
    std::vector<std::vector<StagedAppend>> written_batches;
    written_batches.push_back(std::move(batch));
    batch.clear();
    append_metrics().batch_appends.observe(static_cast<double>(written_batches.back().size()));
    auto written = timed(append_metrics().write_seconds, [&] { return backend_.write_batch(written_batches.back()); });
    if (!exclusive_) {
      // A shared backend numbered the batch just now: tell the appends it wrote before
      // the next batch is taken.
      std::vector<Answer> answers;
      {
        MutexLock lk(mu_);
        if (written)
          for (const auto& a : written_batches.back())
            if (!a.answer && a.request.on_staged && !a.told_staged) {
              auto told = a.result();
              told.pending_mark = a.mark;
              a.request.on_staged(told);
            }
        numbered(written_batches.back(), static_cast<bool>(written), answers);
      }
      for (auto& [done, result] : answers) done(std::move(result));
    }
    if (!written || !options_.group_commit) {
      // Baseline mode syncs each append itself, one at a time.
      finish(written_batches, written ? timed_sync(1) : written);
      continue;
    }
    // The sync thread makes it durable while the next batch is written.
    MutexLock lk(mu_);
    if (failed_) {  // a sync failed meanwhile: this batch was built on the failed one
      Result<void> failure = fail(*failed_);
      lk.unlock();
      finish(written_batches, failure);
      continue;
    }
    unsynced_.push_back(std::move(written_batches.back()));
    sync_cv_.notify_one();
  }
}

// Exclusive backends, after a failed batch: once the sync thread is done with every batch
// written before it, the backend drops what is past the last durable position and shows
// it can write; then versions and positions are read afresh and appends accepted again.
void AppendPipeline::recover() {
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    {
      MutexLock lk(mu_);
      writer_cv_.wait_for(mu_, backoff, [&]() REQUIRES(mu_) { return stopping_; });
      writer_cv_.wait(mu_, [&]() REQUIRES(mu_) { return (unsynced_.empty() && !syncing_) || stopping_; });
      if (stopping_) return;
    }
    // Only this thread moves last_committed_ now: no batch is being synced.
    const Position durable = last_committed();
    auto r = exclusive_->recover(durable);
    if (r) {
      MutexLock lk(mu_);
      auto last = exclusive_->committed_last_position();
      if (last && *last == durable) {
        OF_CHECK(in_flight_.empty() && in_flight_keys_.empty(), "appends in flight while the pipeline recovers");
        next_position_ = durable + 1;
        streams_.clear();  // versions counted failed appends
        failed_.reset();
        return;
      }
      r = last ? fail(Errc::internal, "the store holds position " + to_string(*last) + " after recovering to " +
                                          to_string(durable))
               : fail(last.error());
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    report_failure("event store", "write", "recovery after a failed batch: " + r.error().message,
                   "appends answer unavailable; trying again in " + std::to_string(backoff.count()) + " ms");
  }
}

std::size_t AppendPipeline::queued() const {
  MutexLock lk(mu_);
  return open_.size();
}

std::optional<Error> AppendPipeline::write_failure() const {
  MutexLock lk(mu_);
  return failed_;
}

void AppendPipeline::sync_loop() {
  for (;;) {
    std::vector<std::vector<StagedAppend>> batches;
    {
      MutexLock lk(mu_);
      sync_cv_.wait(mu_, [&]() REQUIRES(mu_) { return !unsynced_.empty() || writer_done_; });
      if (unsynced_.empty()) return;
      batches.swap(unsynced_);
      syncing_ = true;
    }
    finish(batches, timed_sync(batches.size()));
    {
      MutexLock lk(mu_);
      syncing_ = false;
    }
    writer_cv_.notify_all();  // a recovering writer waits for this
  }
}

// Exclusive backends: the batch at `first` failed. It and everything
// accepted after it fail; appends are refused until recover() succeeded.
void AppendPipeline::fail_from(Position first, const Error& error, std::vector<Answer>& answers) {
  failed_ = Error{Errc::unavailable, "event store write failed (appends are refused until it can write again): " +
                                         error.message};
  failed_from_ = first;
  Result<AppendResult> failure = fail(*failed_);
  std::erase_if(unsynced_, [&](std::vector<StagedAppend>& batch) REQUIRES(mu_) {
    if (batch.front().first_position < first) return false;  // written before it: its sync decides
    for (auto& a : batch) settle(a, failure, answers);
    return true;
  });
  for (auto& a : open_) settle(a, failure, answers);
  open_.clear();
  report_failure("event store", "write", "batch from position " + to_string(first) + ": " + error.message,
                 "the batch and every append queued behind it answer unavailable, later ones too until a "
                 "probe write succeeds (tried after 100 ms, backing off to 2 s)");
  failure_told_ = true;
  writer_cv_.notify_all();
}

// Answers written batches once `synced` says whether they are durable.
void AppendPipeline::finish(std::vector<std::vector<StagedAppend>>& batches, const Result<void>& synced) {
  std::vector<Answer> answers;
  {
    MutexLock lk(mu_);
    if (!synced && exclusive_ && !failed_) fail_from(batches.front().front().first_position, synced.error(), answers);
    for (auto& batch : batches) {
      // Exclusive backends: a batch written after a failed one is failed with it.
      const bool stands = synced && (!failed_ || batch.front().first_position < failed_from_);
      if (stands) {
        for (auto& a : batch) {
          // Exclusive backends number appends in memory and answer them in that order.
          OF_CHECK(!exclusive_ || a.result().position > last_committed_, "appends made durable out of order");
          if (!a.answer) last_committed_ = std::max(last_committed_, a.result().position);
          settle(a, a.answer ? *a.answer : a.result(), answers);
        }
        backend_.on_durable(batch);
        if (failure_told_ && !failed_) {
          recovered("event store", "write", "appends are durable again, up to position " +
                                                to_string(last_committed_));
          failure_told_ = false;
        }
        continue;
      }
      // A shared backend built nothing in memory on a failed batch: only its own
      // outcome is unknown (a retry with the same event ids learns it). An exclusive one
      // removes it when it recovers.
      Result<AppendResult> failure =
          exclusive_ ? fail(*failed_)
                     : fail(Errc::unavailable, "event store write failed (retry with the same event ids to learn "
                                               "whether it was stored): " + synced.error().message);
      for (auto& a : batch) settle(a, failure, answers);
    }
    evict_streams();
    check_counts();
  }
  committed_cv_.notify_all();
  for (auto& [done, result] : answers) done(std::move(result));
}

}  // namespace orderflow::es
