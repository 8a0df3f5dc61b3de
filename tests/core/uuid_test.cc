#include "core/uuid.h"

#include <gtest/gtest.h>

#include <set>

namespace orderflow {
namespace {

TEST(Uuid, V5MatchesTheRfcExample) {
  // RFC 9562 appendix A.4: the DNS namespace and "www.example.com".
  constexpr std::array<unsigned char, 16> kDns = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                                  0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
  EXPECT_EQ(uuid_v5(kDns, "www.example.com"), "2ed6657d-e927-568b-95e1-2665a8aea6a2");
}

TEST(Uuid, V7IsTimeOrderedVersionedAndUnique) {
  auto a = uuid_v7(1'000), b = uuid_v7(2'000);
  EXPECT_LT(a, b);
  EXPECT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '7');
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos);
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) seen.insert(uuid_v7(5'000));
  EXPECT_EQ(seen.size(), 10000u);
}

TEST(Uuid, V7TimeReadsBackTheMillisecondsOfAV7OnlyId) {
  EXPECT_EQ(uuid_v7_unix_ms(uuid_v7(1'732'000'000'123)), 1'732'000'000'123);
  EXPECT_EQ(uuid_v7_unix_ms("2ed6657d-e927-568b-95e1-2665a8aea6a2"), std::nullopt);  // v5
  EXPECT_EQ(uuid_v7_unix_ms("not-a-uuid"), std::nullopt);
  EXPECT_EQ(uuid_v7_unix_ms("0193zzzz-0000-7000-8000-000000000000"), std::nullopt);
}

TEST(Uuid, V8HashedIsStableVersionedAndCarriesTheTime) {
  constexpr std::array<unsigned char, 16> kNs{};
  auto a = uuid_v8_hashed(1'732'000'000'123, kNs, "order/charge");
  EXPECT_EQ(a, uuid_v8_hashed(1'732'000'000'123, kNs, "order/charge"));
  EXPECT_NE(a, uuid_v8_hashed(1'732'000'000'123, kNs, "order/refund"));
  EXPECT_EQ(a[14], '8');
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos);
  // The first 48 bits are the time, as in a v7 id of the same millisecond.
  EXPECT_EQ(a.substr(0, 13), uuid_v7(1'732'000'000'123).substr(0, 13));
  EXPECT_LT(a, uuid_v8_hashed(1'732'000'000'124, kNs, "order/charge"));
}

}  // namespace
}  // namespace orderflow
