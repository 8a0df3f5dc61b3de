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

}  // namespace
}  // namespace orderflow
