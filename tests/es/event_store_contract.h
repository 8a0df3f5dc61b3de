// The EventStore contract suite: one set of cases, run unchanged against every adapter
// (leveldb's table_test harness idea). An adapter's test file instantiates it with a
// factory for its harness:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, EventStoreContract,
//                            testing::Values(EventStoreContractParam{"sqlite", make_harness}));
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "es/event_store.h"
#include "es/upcaster.h"

namespace orderflow::testing {

// How many of the newest events a harness's store checks when it opens.
inline constexpr std::size_t kVerifiedAtOpen = 64;

// One backend's store over fresh, private data that survives reopen().
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  virtual es::EventStore& store() = 0;
  virtual es::SnapshotStore& snapshots() = 0;
  virtual es::CheckpointStore& checkpoints() = 0;
  virtual es::StoredLog& log() = 0;
  // Null: the store keeps its idempotency records for ever (the simulation's).
  virtual es::IdempotencyRecords* idempotency_records() { return nullptr; }
  // Closes the store and opens the same data again, with these upcasters (may be null).
  virtual void reopen(const es::UpcasterRegistry* upcasters = nullptr) = 0;
  // Closes the store, replaces `original` by `replacement` (as long) in the stored bytes
  // of the event at `position` behind the store's back (an error if they are not there),
  // and opens the store again: answers what opening answered. After an error the store
  // is closed.
  virtual Result<void> tamper(es::Position position, const std::string& original, const std::string& replacement) = 0;
  // The same for the stored state of `stream_id`'s snapshot.
  virtual Result<void> tamper_snapshot(const std::string& stream_id, const std::string& original,
                                       const std::string& replacement) = 0;
  // Whether the store keeps its events on a medium whose bytes can change behind its back
  // (a file, a database), which it checks; the simulation's in-memory store does not, and
  // the corruption cases skip it.
  virtual bool has_medium() const { return true; }
};

struct EventStoreContractParam {
  std::string name;
  std::function<std::unique_ptr<StoreHarness>()> make;
};

inline std::string PrintToString(const EventStoreContractParam& p) { return p.name; }

class EventStoreContract : public ::testing::TestWithParam<EventStoreContractParam> {
 protected:
  void SetUp() override { harness_ = GetParam().make(); }
  es::EventStore& store() { return harness_->store(); }
  std::unique_ptr<StoreHarness> harness_;
};

// A fresh random UUID string (v4 layout), for event ids in tests.
std::string test_uuid();

// An append of `n` events of type `type` with fresh ids.
es::AppendRequest make_append(const es::StreamId& stream, es::ExpectedVersion expected, int n = 1,
                              const std::string& type = "Tested");

}  // namespace orderflow::testing
