// The latest known state of recently used aggregates, so a command decides without
// reading its stream. An entry is either committed (what the store holds) or pending
// (an append of this process that the store accepted into its open batch but has not
// yet made durable): a command may decide on a pending state and append right behind
// it, which the store's pipeline validates and batches, so a hot stream takes many
// appends per sync instead of one. A stale entry (another process appended) only
// costs a version conflict, after which the handler forgets it and reads the store.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/evict.h"
#include "core/mutex.h"
#include "es/event.h"

namespace orderflow::app {

template <class State>
class AggregateCache {
 public:
  explicit AggregateCache(std::size_t limit) : limit_(limit) {}

  // States are shared, never copied by the cache: an aggregate with a large state (a
  // product with many orders holding stock) costs one copy per command, in evolve.
  struct Entry {
    std::shared_ptr<const State> state;
    es::StreamVersion version = es::kNoStream;
    bool committed = false;
    std::uint64_t mark = 0;  // a pending state's es::AppendResult::pending_mark
  };

  // The entry for `stream`; with committed_only, a pending one reads as absent.
  std::optional<Entry> get(const es::StreamId& stream, bool committed_only) const {
    MutexLock lk(mu_);
    auto it = entries_.find(stream);
    if (it == entries_.end() || (committed_only && !it->second.entry.committed)) return std::nullopt;
    return it->second.entry;
  }

  // Entries only move forward: an older version is ignored. At the same version a
  // committed state replaces a pending one, and a pending one told later replaces a
  // pending one: on a shared store a pending state may be a guess the database will
  // refuse (an append decided on a stale state, told its state as it was accepted), while
  // the committed one is what the store holds and the one told last is the one this
  // process's appends in flight lead to.
  void put(const es::StreamId& stream, std::shared_ptr<const State> state, es::StreamVersion version,
           bool committed, std::uint64_t mark = 0) {
    MutexLock lk(mu_);
    auto it = entries_.find(stream);
    if (it != entries_.end()) {
      auto& e = it->second.entry;
      if (version < e.version) return;
      if (version == e.version && e.committed) return;
      it->second = Slot{Entry{std::move(state), version, committed, committed ? 0 : mark}, ++uses_};
      return;
    }
    if (entries_.size() >= limit_) evict();
    entries_.emplace(stream, Slot{Entry{std::move(state), version, committed, committed ? 0 : mark}, ++uses_});
  }

  // Drops the entry if it is not newer than `version` (it is known to be stale).
  void forget(const es::StreamId& stream, es::StreamVersion version) {
    MutexLock lk(mu_);
    if (auto it = entries_.find(stream); it != entries_.end() && it->second.entry.version <= version)
      entries_.erase(it);
  }

  // After the store refused an append that had been staged (told its state, pending at
  // `after`) because it was decided on a stale state at `before`: drops the entry if it
  // is not newer than `before`, or if it is pending at `after` or past it (that append's
  // own, or one decided on it, refused with it or soon to be).
  void forget_refused(const es::StreamId& stream, es::StreamVersion before, es::StreamVersion after) {
    MutexLock lk(mu_);
    if (auto it = entries_.find(stream); it != entries_.end()) {
      const auto& e = it->second.entry;
      if (e.version <= before || (!e.committed && e.version >= after)) entries_.erase(it);
    }
  }

  // Drops the entry if it is the pending one at `version`: the append that staged it
  // failed. An entry staged by a later append (decided on this one) is left to that
  // append's own answer, which fails too.
  void forget_pending(const es::StreamId& stream, es::StreamVersion version) {
    MutexLock lk(mu_);
    if (auto it = entries_.find(stream);
        it != entries_.end() && !it->second.entry.committed && it->second.entry.version == version)
      entries_.erase(it);
  }

  void clear() {
    MutexLock lk(mu_);
    entries_.clear();
  }

 private:
  struct Slot {
    Entry entry;
    std::uint64_t used = 0;  // when it was last put
  };

  // Drops the least recently put committed entries until half the limit is free (an
  // order's state stays from its placement through its saga's steps); pending ones must
  // stay, or a command could read an older committed state and conflict with its own process.
  void evict() REQUIRES(mu_) {
    evict_least_recent(
        entries_, limit_ / 2, [](const Slot& s) { return s.entry.committed; }, [](const Slot& s) { return s.used; });
  }

  const std::size_t limit_;
  mutable Mutex mu_;
  std::unordered_map<es::StreamId, Slot> entries_ GUARDED_BY(mu_);
  std::uint64_t uses_ GUARDED_BY(mu_) = 0;
};

}  // namespace orderflow::app
