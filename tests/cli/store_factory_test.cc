#include "cli/store_factory.h"

#include <gtest/gtest.h>

namespace orderflow::cli {
namespace {

TEST(RedactedStoreUrl, HidesThePasswordInTheUserInfoAndTheQuery) {
  EXPECT_EQ(redacted_store_url("postgres://app:s3cret@db:5432/orders"), "postgres://app:***@db:5432/orders");
  EXPECT_EQ(redacted_store_url("postgresql://db/orders?user=app&password=s3cret&sslmode=require"),
            "postgresql://db/orders?user=app&password=***&sslmode=require");
  EXPECT_EQ(redacted_store_url("postgres://app@db/orders"), "postgres://app@db/orders");
}

TEST(RedactedStoreUrl, SaysSoWhenItIsNoUrl) { EXPECT_EQ(redacted_store_url("postgres://a b:c@d"), "(not a URL)"); }

}  // namespace
}  // namespace orderflow::cli
