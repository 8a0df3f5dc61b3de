#include "domain/validation.h"

#include <gtest/gtest.h>

#include <string>

namespace orderflow::domain {
namespace {

TEST(Validation, IdsAreOneToSixtyFourCharactersOfTheCharset) {
  EXPECT_TRUE(is_valid_id("a"));
  EXPECT_TRUE(is_valid_id("Az09_.:-"));
  EXPECT_TRUE(is_valid_id(std::string(64, 'x')));
  EXPECT_FALSE(is_valid_id(""));
  EXPECT_FALSE(is_valid_id(std::string(65, 'x')));
  for (const char* bad : {"a b", "a/b", "a@b", "é", "a\nb"}) EXPECT_FALSE(is_valid_id(bad)) << bad;
}

TEST(Validation, UuidsHaveTheirShapeInEitherCase) {
  EXPECT_TRUE(is_uuid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
  EXPECT_TRUE(is_uuid("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"));
  EXPECT_FALSE(is_uuid(""));
  EXPECT_FALSE(is_uuid("0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"));       // no dashes
  EXPECT_FALSE(is_uuid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5"));    // short
  EXPECT_FALSE(is_uuid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b0"));  // long
  EXPECT_FALSE(is_uuid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g"));   // not hex
  EXPECT_FALSE(is_uuid("0190a1b2-c3d47-e5f-8a9b-0c1d2e3f4a5b"));   // dash misplaced
}

TEST(Validation, ChecksNameTheFieldAndTheRule) {
  EXPECT_EQ(check_id("product_id", "ok"), std::nullopt);
  auto id = check_id("product_id", "not ok");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->code, Errc::validation_failed);
  EXPECT_EQ(id->message, "product_id must be 1-64 characters of [A-Za-z0-9_.:-]");
  EXPECT_EQ(check_uuid("order_id", "x")->message, "order_id must be a UUID");
  EXPECT_EQ(check_not_empty("name", "")->message, "name must not be empty");
  EXPECT_EQ(check_at_least("quantity", 0, 1)->message, "quantity must be at least 1");
  EXPECT_EQ(check_at_least("unit_price_cents", -1, 0)->message, "unit_price_cents must not be negative");
  EXPECT_EQ(check_at_least("quantity", 1, 1), std::nullopt);
}

}  // namespace
}  // namespace orderflow::domain
