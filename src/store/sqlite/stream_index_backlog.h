// StreamIndexBacklog: the entries of the SQLite store's stream index (stream, version ->
// position) that are not in its `stream_index` table yet.
//
// Why: an index keyed by stream takes each append on a page of its own stream, so a batch
// of appends to N streams rewrites N index pages (4 KiB each in the WAL) for N small
// entries. Measured with 256 appends per batch over 1000 streams, that index was 90% of
// the bytes written (0.92 WAL pages per event; 0.09 without it). So the writer keeps new
// entries here and moves them to the table a stream at a time, once the stream has
// gathered several: each page it rewrites then takes many entries.
//
// The events themselves are always written at once; this index can be rebuilt from them,
// so nothing here needs to survive a crash: the table records up to which position it is
// complete (`indexed_through`) and opening the store indexes what came after.
//
// Readers combine both: they copy the stream's entries from here *before* they read the
// table, and an entry leaves here only after the transaction that put it in the table
// committed, so each entry is always in one of the two.
//
// How many: the entries of the last ten seconds of appends, at least 32Ki and at most
// 1Mi. An append to one of S old streams round-robin rewrites about N / (117 * kept) index
// pages per entry moved (N entries in the table, ~35 bytes each), so what is kept must
// grow with the rate for the cost of an append not to grow with the log. Measured with
// `bench append --streams 100000`, 2M appends: 65k events/s (p99 21 ms) keeping 32Ki, 60k
// keeping 256Ki, 145k (p99 6 ms) keeping 1Mi; 10M appends keeping 1Mi, 124k (p99 7 ms),
// the last million 115k. A quiet store keeps the minimum, so memory follows the load: ~100
// bytes an entry where streams are short (an order's), less where they are long.
//
// Thread safety: every method may be called from any thread; the writer thread is the
// only one that adds, picks, drops and forgets.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/mutex.h"
#include "es/event.h"

namespace orderflow::sqlite {

class StreamIndexBacklog {
 public:
  struct Entry {
    es::StreamVersion version;
    es::Position position;
  };
  // Entries picked to move to the table: a run of streams in key order, each with all
  // its entries, ascending by (stream, version).
  struct Pick {
    std::vector<std::pair<es::StreamId, std::vector<Entry>>> streams;
    // Every position below this one is indexed once the picked entries are in the table
    // (the oldest entry left here; `next` if none is).
    es::Position indexed_below{0};
  };

  using Clock = std::chrono::steady_clock;
  // Entries kept here before pick() starts moving them: those added over the last
  // `window`, within [min, max].
  struct Limits {
    std::size_t min = 32768;
    std::size_t max = 1 << 20;
    std::chrono::seconds window{10};
  };
  explicit StreamIndexBacklog(Limits limits) : limits_(limits) {}
  // A fixed number kept (tests).
  explicit StreamIndexBacklog(std::size_t target) : limits_{target, target, {}} {}

  // A stream's new entries, in version order (the stream's newest versions).
  void add(const es::StreamId& stream_id, const std::vector<Entry>& entries);
  // The stream's entries with position <= `up_to`, ascending.
  std::vector<Entry> entries(const es::StreamId& stream_id, es::Position up_to) const;
  // The stream's newest entry with position <= `up_to`.
  std::optional<Entry> last(const es::StreamId& stream_id, es::Position up_to) const;
  // Past the target, streams from where the last pick ended holding at least `wanted`
  // entries (all of them if fewer remain). Empty below the target. `next`: the first
  // position of what the caller writes next, not yet added here.
  Pick pick(std::size_t wanted, es::Position next, Clock::time_point now = Clock::now());
  // Forgets picked entries, once the table holds them.
  void drop(const Pick& picked);
  // Forgets every entry past `position`: their events were written by batches that
  // failed, and the store removes them.
  void forget_after(es::Position position);
  std::size_t size() const;

 private:
  // What is kept now: marks the count added so far, at most every quarter second.
  std::size_t target(Clock::time_point now) REQUIRES(mu_);

  const Limits limits_;
  mutable Mutex mu_;
  std::uint64_t added_ GUARDED_BY(mu_) = 0;  // entries ever added
  // (when, added_ then), oldest first; the first is the newest at least `window` old.
  std::deque<std::pair<Clock::time_point, std::uint64_t>> marks_ GUARDED_BY(mu_);
  std::map<es::StreamId, std::vector<Entry>, std::less<>> streams_ GUARDED_BY(mu_);
  std::set<std::pair<es::Position, es::StreamId>> oldest_ GUARDED_BY(mu_);  // each stream's first entry
  std::size_t size_ GUARDED_BY(mu_) = 0;
  es::StreamId cursor_ GUARDED_BY(mu_);  // picks resume after this stream
};

}  // namespace orderflow::sqlite
