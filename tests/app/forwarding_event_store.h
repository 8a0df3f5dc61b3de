// An EventStore that passes every call on to another: the test stores of tests/app derive
// from it and override only what they change (hold appends, watch threads, hide a key).
#pragma once

#include "es/event_store.h"

namespace orderflow::testing {

class ForwardingEventStore : public es::EventStore {
 public:
  explicit ForwardingEventStore(es::EventStore& inner) : inner_(inner) {}

  void append_async(es::AppendRequest req, es::AppendCallback done) override {
    inner_.append_async(std::move(req), std::move(done));
  }
  Result<std::vector<es::RecordedEvent>> read_stream(const es::StreamId& id, es::StreamVersion from, std::size_t max,
                                                     es::Direction d) override {
    return inner_.read_stream(id, from, max, d);
  }
  Result<es::Position> scan_all(es::Position from, std::size_t max, const es::EventFilter& f,
                                const std::function<void(const es::RecordedEvent&)>& fn) override {
    return inner_.scan_all(from, max, f, fn);
  }
  Result<std::optional<es::RecordedEvent>> read_event(const std::string& event_id) override {
    return inner_.read_event(event_id);
  }
  Result<std::vector<es::RecordedEvent>> read_events(std::span<const std::string> event_ids) override {
    return inner_.read_events(event_ids);
  }
  Result<es::Position> last_position() override { return inner_.last_position(); }
  Result<es::StreamVersion> stream_version(const es::StreamId& id) override { return inner_.stream_version(id); }
  Result<std::optional<es::IdempotencyRecord>> find_idempotency(const std::string& key) override {
    return inner_.find_idempotency(key);
  }
  Result<std::optional<es::IdempotencyRecord>> find_idempotency_settled(const std::string& key) override {
    return inner_.find_idempotency_settled(key);
  }
  bool wait_for_events(es::Position after, std::chrono::milliseconds timeout) override {
    return inner_.wait_for_events(after, timeout);
  }

 protected:
  es::EventStore& inner_;
};

}  // namespace orderflow::testing
