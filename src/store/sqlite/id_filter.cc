#include "store/sqlite/id_filter.h"

#include <algorithm>
#include <functional>

namespace orderflow::sqlite {

namespace {

// splitmix64's finaliser: spreads the bits of a hash so that the block index and the eight
// bit positions taken from it are independent enough.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

IdFilter::IdFilter(std::size_t capacity)
    // 512 bits per block, about 10 bits per id.
    : blocks_(std::clamp<std::size_t>(capacity * 10 / 512 + 1, 1, kMaxBytes / sizeof(Block))),
      table_(new Block[blocks_]) {
  for (std::size_t b = 0; b < blocks_; ++b)
    for (auto& w : table_[b].words) w.store(0, std::memory_order_relaxed);
}

IdFilter::Probe IdFilter::probe(std::string_view id) const {
  const std::uint64_t h = std::hash<std::string_view>{}(id);
  const std::uint64_t a = mix(h), b = mix(h ^ 0x9e3779b97f4a7c15ULL);
  Probe p;
  // Lemire's multiply-shift maps the top 32 bits of `a` onto [0, blocks_).
  p.block = static_cast<std::size_t>(((a >> 32) * static_cast<std::uint64_t>(blocks_)) >> 32);
  for (int w = 0; w < 8; ++w) {
    // Six bits per word: words 0-3 from bits 0-23 of `a` (its top half chose the block),
    // words 4-7 from bits 24-47 of `b`.
    const std::uint64_t source = w < 4 ? (a >> (w * 6)) : (b >> ((w - 4) * 6 + 24));
    p.bits[w] = std::uint64_t{1} << (source & 63);
  }
  return p;
}

void IdFilter::add(std::string_view id) {
  const auto p = probe(id);
  auto& block = table_[p.block];
  for (int w = 0; w < 8; ++w) block.words[w].fetch_or(p.bits[w], std::memory_order_release);
}

bool IdFilter::may_contain(std::string_view id) const {
  const auto p = probe(id);
  const auto& block = table_[p.block];
  for (int w = 0; w < 8; ++w)
    if ((block.words[w].load(std::memory_order_acquire) & p.bits[w]) == 0) return false;
  return true;
}

}  // namespace orderflow::sqlite
