// IdFilter: a Bloom filter over ids a store holds (its event ids; its stream ids), so an
// append of fresh event ids (nearly all of them) learns that they are not stored, and an
// append to a stream never written (a saga's record opening saga-<order id>) that it has
// no events, without an index lookup. It never answers "absent" for an id that was added
// (no false negatives); it answers "maybe" for about 1 in 100 ids never added while it
// holds up to `capacity` ids, and more as it fills past that, which only costs lookups.
//
// Memory budget: 10 bits an id, at most kMaxBytes (16 MiB, 13.4M ids) however large the
// capacity asked for: the filter must not grow with the log. Past that many ids it still
// answers, with more false positives: 6.0% at 20M ids (measured).
//
// A split-block filter (as in Parquet and Impala): an id sets one bit in each of the eight
// 64-bit words of one 64-byte block, so a query touches one cache line.
//
// Thread safety: add() and may_contain() may run on any threads at once (the words are
// atomics). An id whose add() returned before may_contain() began is always seen.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace orderflow::sqlite {

class IdFilter {
 public:
  static constexpr std::size_t kMaxBytes = std::size_t{16} << 20;
  // The capacity that fills kMaxBytes at 10 bits an id (13.4M ids).
  static constexpr std::size_t kMaxIds = kMaxBytes * 8 / 10;

  // Sized for `capacity` ids at about 10 bits each, up to kMaxBytes.
  explicit IdFilter(std::size_t capacity);

  std::size_t bytes() const { return blocks_ * sizeof(Block); }

  void add(std::string_view id);
  bool may_contain(std::string_view id) const;

 private:
  struct alignas(64) Block {
    std::atomic<std::uint64_t> words[8];
  };
  struct Probe {
    std::size_t block;
    std::uint64_t bits[8];
  };
  Probe probe(std::string_view id) const;

  std::size_t blocks_;
  std::unique_ptr<Block[]> table_;
};

}  // namespace orderflow::sqlite
