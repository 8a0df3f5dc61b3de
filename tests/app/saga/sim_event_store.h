// A deterministic, single-threaded, in-memory EventStore for simulations: append_async
// answers inline, and a seeded fault injector can refuse an append (nothing written) or
// lose its reply (written, but the caller is told it failed). The log survives a
// simulated crash of its clients; the checkpoint store does too.
#pragma once

#include <map>
#include <random>
#include <unordered_map>

#include "es/event_store.h"

namespace orderflow::testing {

class SimEventStore final : public es::EventStore, public es::CheckpointStore {
 public:
  explicit SimEventStore(std::mt19937_64& rng) : rng_(rng) {}

  std::int64_t now_ms = 1'700'000'000'000;  // recorded_at of what is appended
  double refuse_rate = 0;  // answer unavailable, write nothing
  double lose_rate = 0;    // write, then answer unavailable

  void append_async(es::AppendRequest req, es::AppendCallback done) override {
    if (chance(refuse_rate)) return done(fail(Errc::unavailable, "injected: append refused"));
    auto r = write(req);
    if (r && chance(lose_rate)) return done(fail(Errc::unavailable, "injected: reply lost"));
    done(std::move(r));
  }

  Result<std::vector<es::RecordedEvent>> read_stream(const std::string& stream_id, es::StreamVersion from,
                                                     std::size_t max, es::Direction direction) override {
    std::vector<es::RecordedEvent> out;
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return out;
    const auto& positions = it->second;
    auto n = static_cast<es::StreamVersion>(positions.size());
    if (direction == es::Direction::forward) {
      for (auto v = std::max<es::StreamVersion>(from, 0); v < n && out.size() < max; ++v)
        out.push_back(log_[positions[static_cast<std::size_t>(v)]]);
    } else {
      for (auto v = from < 0 || from >= n ? n - 1 : from; v >= 0 && out.size() < max; --v)
        out.push_back(log_[positions[static_cast<std::size_t>(v)]]);
    }
    return out;
  }

  Result<es::Position> scan_all(es::Position from, std::size_t max, const es::EventFilter& filter,
                                const std::function<void(const es::RecordedEvent&)>& fn) override {
    auto p = std::max<es::Position>(from, 1);
    for (std::size_t n = 0; p <= last() && n < max; ++p) {
      const auto& e = log_[static_cast<std::size_t>(p - 1)];
      if (filter.matches(e)) {
        fn(e);
        ++n;
      }
    }
    return p;
  }

  Result<es::Position> last_position() override { return last(); }
  Result<es::StreamVersion> stream_version(const std::string& stream_id) override {
    auto it = streams_.find(stream_id);
    return it == streams_.end() ? es::kNoStream : static_cast<es::StreamVersion>(it->second.size()) - 1;
  }
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string&) override {
    return std::optional<es::IdempotencyRecord>();
  }
  bool wait_for_events(es::Position after, std::chrono::milliseconds) override { return last() > after; }

  Result<es::Position> load_checkpoint(const std::string& name) override {
    auto it = checkpoints_.find(name);
    return it == checkpoints_.end() ? es::Position{0} : it->second;
  }
  Result<void> save_checkpoint(const std::string& name, es::Position position) override {
    auto& saved = checkpoints_[name];
    saved = std::max(saved, position);
    return {};
  }

 private:
  es::Position last() const { return static_cast<es::Position>(log_.size()); }
  bool chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  Result<es::AppendResult> write(const es::AppendRequest& req) {
    // The same ids again: in the same stream, the original answer; elsewhere, duplicate_event.
    if (auto it = ids_.find(req.events.front().event_id); it != ids_.end()) {
      const auto& first = log_[static_cast<std::size_t>(it->second - 1)];
      if (first.stream_id != req.stream_id) return fail(Errc::duplicate_event, "event id stored elsewhere");
      auto n = static_cast<std::int64_t>(req.events.size());
      return es::AppendResult{first.version + n - 1, first.position + n - 1, false};
    }
    for (const auto& e : req.events)
      if (ids_.contains(e.event_id)) return fail(Errc::duplicate_event, "event id stored elsewhere");
    auto current = *stream_version(req.stream_id);
    if (!req.expected.matches(current)) {
      Error e{Errc::version_conflict, "expected " + req.expected.describe(), current};
      return fail(std::move(e));
    }
    auto& positions = streams_[req.stream_id];
    for (const auto& e : req.events) {
      es::RecordedEvent r{e.event_id, req.stream_id, e.type, static_cast<es::StreamVersion>(positions.size()),
                          last() + 1, e.schema_version, e.data, e.metadata, now_ms};
      ids_[e.event_id] = r.position;
      positions.push_back(log_.size());
      log_.push_back(std::move(r));
    }
    return es::AppendResult{static_cast<es::StreamVersion>(positions.size()) - 1, last()};
  }

  std::mt19937_64& rng_;
  std::vector<es::RecordedEvent> log_;
  std::unordered_map<std::string, std::vector<std::size_t>> streams_;  // indexes into log_
  std::unordered_map<std::string, es::Position> ids_;
  std::map<std::string, es::Position> checkpoints_;
};

}  // namespace orderflow::testing
