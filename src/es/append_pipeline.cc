#include "es/append_pipeline.h"

#include <pthread.h>

#include <algorithm>

namespace orderflow::es {

namespace {

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

AppendPipeline::AppendPipeline(AppendBackend& backend, AppendPipelineOptions options, Clock clock)
    : backend_(backend), options_(options), clock_(std::move(clock)) {}

AppendPipeline::~AppendPipeline() { stop(); }

Result<void> AppendPipeline::start() {
  std::lock_guard lk(mu_);
  OF_CHECK(!started_, "AppendPipeline started twice");
  auto last = backend_.committed_last_position();
  if (!last) return fail(last.error());
  last_committed_ = *last;
  next_position_ = *last + 1;
  started_ = true;
  writer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "of-writer");
    writer_loop();
  });
  syncer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "of-sync");
    sync_loop();
  });
  return {};
}

void AppendPipeline::stop() {
  {
    std::lock_guard lk(mu_);
    if (!started_ || stopping_) return;
    stopping_ = true;
  }
  writer_cv_.notify_all();
  committed_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (syncer_.joinable()) syncer_.join();
}

Position AppendPipeline::last_committed() const {
  std::lock_guard lk(mu_);
  return last_committed_;
}

bool AppendPipeline::wait_for_commit(Position after, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  committed_cv_.wait_for(lk, timeout, [&] { return last_committed_ > after || stopping_; });
  return last_committed_ > after;
}

Result<StreamVersion> AppendPipeline::current_version(const AppendRequest& req) {
  const auto& stream_id = req.stream_id;
  if (auto it = streams_.find(stream_id); it != streams_.end()) return it->second.version;
  auto committed = req.fresh_stream_id ? Result<StreamVersion>(kNoStream) : backend_.committed_version(stream_id);
  if (!committed) return committed;
  streams_.emplace(stream_id, StreamEntry{*committed, 0});
  return committed;
}

// A retry of an append that is in flight waits for the same answer (attached = true);
// a retry of a committed append is answered with the original result. Event ids seen
// anywhere else are a duplicate_event error.
std::optional<Result<AppendResult>> AppendPipeline::check_duplicate(AppendRequest& req,
                                                                    AppendCallback& done,
                                                                    bool& attached) {
  const auto& first_id = req.events.front().event_id;
  for (const auto& e : req.events) {
    auto it = in_flight_ids_.find(e.event_id);
    if (it == in_flight_ids_.end()) continue;
    auto& original = in_flight_.at(it->second);
    if (it->second == first_id && original.stream_id == req.stream_id &&
        same_ids(req.events, original.event_ids)) {
      original.followers.push_back(std::move(done));
      attached = true;
      return std::nullopt;
    }
    return fail(Errc::duplicate_event, "event " + e.event_id + " is already being appended elsewhere");
  }
  for (std::size_t i = 0; i < req.events.size(); ++i) {
    auto found = backend_.find_event(req.events[i].event_id);
    if (!found) return Result<AppendResult>(found.error());
    if (!*found) continue;
    const auto& ref = **found;
    auto duplicate = fail(Errc::duplicate_event,
                          "event " + req.events[i].event_id + " is already stored in " +
                              ref.stream_id + " at version " + std::to_string(ref.version));
    if (i != 0 || ref.stream_id != req.stream_id) return duplicate;
    auto stored = backend_.stream_event_ids(req.stream_id, ref.version, req.events.size());
    if (!stored) return Result<AppendResult>(stored.error());
    if (!same_ids(req.events, *stored)) return duplicate;
    auto last = backend_.find_event(req.events.back().event_id);
    if (!last) return Result<AppendResult>(last.error());
    OF_CHECK(last->has_value(), "stored event vanished");
    return AppendResult{(*last)->version, (*last)->position};
  }
  return std::nullopt;
}

void AppendPipeline::append(AppendRequest req, AppendCallback done) {
  if (auto shape = check_request_shape(req); !shape) return done(fail(shape.error()));

  std::optional<Result<AppendResult>> answer;
  {
    std::lock_guard lk(mu_);
    if (failed_) {
      answer = fail(*failed_);
    } else if (stopping_ || !started_) {
      answer = fail(Errc::unavailable, "the event store is shutting down");
    } else if (!req.fresh_event_ids) {
      bool attached = false;
      answer = check_duplicate(req, done, attached);
      if (attached) return;
    }
    // A retry of a stored append was answered above; a new append may not reuse a key.
    if (!answer && req.idempotency) {
      if (auto it = in_flight_keys_.find(req.idempotency->key); it != in_flight_keys_.end()) {
        it->second.push_back(std::move(done));
        return;
      }
      auto exists = backend_.idempotency_key_exists(req.idempotency->key);
      if (!exists)
        answer = fail(exists.error());
      else if (*exists)
        answer = fail(Errc::idempotency_key_reused, "idempotency key was already used");
    }
    if (!answer) {
      auto current = current_version(req);
      if (!current) {
        answer = fail(current.error());
      } else if (!req.expected.matches(*current)) {
        Error conflict{Errc::version_conflict,
                       "stream " + req.stream_id + " is at version " + std::to_string(*current) +
                           ", expected " + req.expected.describe(),
                       *current};
        answer = fail(std::move(conflict));
      } else {
        auto n = static_cast<std::int64_t>(req.events.size());
        StagedAppend staged;
        staged.first_version = *current + 1;
        staged.first_position = next_position_;
        staged.recorded_at_ms = clock_();
        next_position_ += n;
        auto& entry = streams_[req.stream_id];
        entry.version = *current + n;
        ++entry.in_flight;

        InFlight flight{req.stream_id, {}, staged.result(), {}};
        flight.event_ids.reserve(req.events.size());
        for (const auto& e : req.events) {
          flight.event_ids.push_back(e.event_id);
          in_flight_ids_.emplace(e.event_id, req.events.front().event_id);
        }
        in_flight_.emplace(req.events.front().event_id, std::move(flight));
        if (req.idempotency) in_flight_keys_.emplace(req.idempotency->key, std::vector<AppendCallback>{});

        staged.request = std::move(req);
        auto& key = staged.request.idempotency;
        if (key && staged.request.render_response) key->response = staged.request.render_response(staged.result());
        if (staged.request.on_staged) staged.request.on_staged(staged.result());
        staged.done = std::move(done);
        open_.push_back(std::move(staged));
        writer_cv_.notify_one();
        return;
      }
    }
  }
  done(std::move(*answer));
}

void AppendPipeline::evict_streams() {
  if (streams_.size() <= options_.stream_cache_limit) return;
  std::erase_if(streams_, [](const auto& kv) { return kv.second.in_flight == 0; });
}

// Drops an answered append's in-flight bookkeeping and queues every answer it owes:
// its own, its retries' (the same outcome) and those of appends that reused its
// idempotency key (told so once the key's record is readable).
void AppendPipeline::settle(StagedAppend& a, const Result<AppendResult>& outcome,
                            std::vector<Answer>& answers) {
  const auto& first_id = a.request.events.front().event_id;
  if (auto it = in_flight_.find(first_id); it != in_flight_.end()) {
    for (auto& f : it->second.followers) answers.emplace_back(std::move(f), outcome);
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
  if (auto it = streams_.find(a.request.stream_id); it != streams_.end()) --it->second.in_flight;
  answers.emplace_back(std::move(a.done), outcome);
}

void AppendPipeline::writer_loop() {
  std::vector<StagedAppend> batch;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      writer_cv_.wait(lk, [&] { return !open_.empty() || stopping_; });
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
    auto written = backend_.write_batch(written_batches.back());
    if (!written || !options_.group_commit) {
      // Baseline mode syncs each append itself, one at a time.
      finish(written_batches, written ? backend_.sync() : written);
      continue;
    }
    // The sync thread makes it durable while the next batch is written.
    std::lock_guard lk(mu_);
    unsynced_.push_back(std::move(written_batches.back()));
    sync_cv_.notify_one();
  }
}

void AppendPipeline::sync_loop() {
  for (;;) {
    std::vector<std::vector<StagedAppend>> batches;
    {
      std::unique_lock lk(mu_);
      sync_cv_.wait(lk, [&] { return !unsynced_.empty() || writer_done_; });
      if (unsynced_.empty()) return;
      batches.swap(unsynced_);
    }
    finish(batches, backend_.sync());
  }
}

// Answers written batches once `synced` says whether they are durable.
void AppendPipeline::finish(std::vector<std::vector<StagedAppend>>& batches, const Result<void>& synced) {
  std::vector<Answer> answers;
  {
    std::lock_guard lk(mu_);
    if (synced && !failed_) {
      last_committed_ = batches.back().back().result().position;
      for (auto& batch : batches) {
        for (auto& a : batch) settle(a, a.result(), answers);
        backend_.on_durable(batch);
      }
    } else {
      // Fail-stop: what is on disk is now unknown, and every append still open or
      // unsynced was validated against versions that may never exist.
      if (!failed_) failed_ = Error{Errc::unavailable, "event store write failed: " + synced.error().message};
      Result<AppendResult> failure = fail(*failed_);
      for (auto& batch : batches)
        for (auto& a : batch) settle(a, failure, answers);
      for (auto& batch : unsynced_)
        for (auto& a : batch) settle(a, failure, answers);
      unsynced_.clear();
      for (auto& a : open_) settle(a, failure, answers);
      open_.clear();
    }
    evict_streams();
  }
  committed_cv_.notify_all();
  for (auto& [done, result] : answers) done(std::move(result));
}

}  // namespace orderflow::es
