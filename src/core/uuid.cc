#include "core/uuid.h"

#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <random>

#include "core/digest.h"
#include "core/time.h"

namespace orderflow {

namespace {

std::mt19937_64& rng() {
  thread_local std::mt19937_64 engine = [] {
    std::array<unsigned char, 8> seed{};
    if (RAND_bytes(seed.data(), seed.size()) != 1) {
      std::random_device rd;
      for (auto& b : seed) b = static_cast<unsigned char>(rd());
    }
    std::uint64_t s = 0;
    for (auto b : seed) s = (s << 8) | b;
    return std::mt19937_64(s);
  }();
  return engine;
}

std::string canonical_text(const std::uint8_t* b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 15]);
  }
  return s;
}

}  // namespace

namespace {
std::array<unsigned char, 20> sha1_of(const std::array<unsigned char, 16>& name_space, std::string_view name) {
  return sha1({std::string_view(reinterpret_cast<const char*>(name_space.data()), name_space.size()), name});
}
}  // namespace

std::string uuid_v5(const std::array<unsigned char, 16>& name_space, std::string_view name) {
  auto h = sha1_of(name_space, name);
  h[6] = static_cast<unsigned char>(0x50 | (h[6] & 0x0f));  // version 5
  h[8] = static_cast<unsigned char>(0x80 | (h[8] & 0x3f));  // variant 10
  return canonical_text(h.data());
}

std::string uuid_v8_hashed(std::int64_t unix_ms, const std::array<unsigned char, 16>& name_space,
                           std::string_view name) {
  auto h = sha1_of(name_space, name);
  auto ms = static_cast<std::uint64_t>(unix_ms);
  for (int i = 0; i < 6; ++i) h[static_cast<std::size_t>(i)] = static_cast<unsigned char>(ms >> (40 - 8 * i));
  h[6] = static_cast<unsigned char>(0x80 | (h[6] & 0x0f));  // version 8
  h[8] = static_cast<unsigned char>(0x80 | (h[8] & 0x3f));  // variant 10
  return canonical_text(h.data());
}

std::optional<std::int64_t> uuid_v7_unix_ms(std::string_view uuid) {
  if (uuid.size() != 36 || uuid[8] != '-' || uuid[13] != '-' || uuid[18] != '-' || uuid[23] != '-' ||
      uuid[14] != '7')
    return std::nullopt;
  std::int64_t ms = 0;
  for (std::size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12}) {
    char c = uuid[i];
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    ms = ms * 16 + digit;
  }
  return ms;
}

std::string uuid_v7(std::int64_t unix_ms) {
  std::array<std::uint8_t, 16> b{};
  auto ms = static_cast<std::uint64_t>(unix_ms);
  for (int i = 0; i < 6; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  std::uint64_t r1 = rng()(), r2 = rng()();
  for (int i = 6; i < 16; ++i) {
    auto& r = i < 14 ? r1 : r2;
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(r);
    r >>= 8;
  }
  b[6] = static_cast<std::uint8_t>(0x70 | (b[6] & 0x0f));  // version 7
  b[8] = static_cast<std::uint8_t>(0x80 | (b[8] & 0x3f));  // variant 10
  return canonical_text(b.data());
}

std::string uuid_v7() { return uuid_v7(now_unix_ms()); }

}  // namespace orderflow
