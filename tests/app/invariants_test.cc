// The invariant checks as an entrance calls them: off the caller's thread, a store that
// cannot be read answered as its error (never as a violation), and a burst of callers
// sharing checks that each started after they asked.
#include "app/invariants.h"

#include <gtest/gtest.h>

#include <future>
#include <random>
#include <thread>

#include "app/saga/sim_event_store.h"
#include "es/upcaster.h"

namespace orderflow::app {
namespace {

class InvariantChecksTest : public ::testing::Test {
 protected:
  void register_product(const std::string& id, int stock) {
    es::AppendRequest req;
    req.stream_id = es::StreamId("product-" + id);
    req.events.push_back({"e-" + id, "ProductRegistered", 1,
                          R"({"product_id":")" + id + R"(","name":"x","unit_price_cents":1,"initial_stock":)" +
                              std::to_string(stock) + "}",
                          "{}"});
    ASSERT_TRUE(store_.append(std::move(req)));
  }

  Result<std::vector<std::string>> check() {
    std::promise<std::pair<Result<std::vector<std::string>>, std::thread::id>> answered;
    checks_.check([&](Result<std::vector<std::string>> r) { answered.set_value({std::move(r), std::this_thread::get_id()}); });
    auto [result, thread] = answered.get_future().get();
    EXPECT_NE(thread, std::this_thread::get_id()) << "the fold ran on the caller's thread";
    return result;
  }

  std::mt19937_64 rng_{1};
  orderflow::testing::SimEventStore store_{rng_};
  InvariantChecks checks_{store_};
};

TEST_F(InvariantChecksTest, AnswersOffTheCallersThreadWhatTheFoldFinds) {
  register_product("p1", 5);
  auto checked = check();
  ASSERT_TRUE(checked) << checked.error().message;
  EXPECT_EQ(*checked, check_invariants(store_).value());
  EXPECT_EQ(*checked, std::vector<std::string>{});
}

TEST_F(InvariantChecksTest, AStoreThatCannotBeReadIsAnErrorNotAViolation) {
  register_product("p1", 5);
  es::UpcasterRegistry unreadable;
  unreadable.add("ProductRegistered", 1,
                 [](std::string_view) -> Result<std::string> { return fail(Errc::corrupt, "injected: unreadable"); });
  store_.set_upcasters(&unreadable);
  auto checked = check();
  ASSERT_FALSE(checked) << "answered as violations: " << checked->size();
  EXPECT_EQ(checked.error().code, Errc::corrupt);
  store_.set_upcasters(nullptr);
  EXPECT_TRUE(check()) << "the next check reads the store again";
}

TEST_F(InvariantChecksTest, ABurstOfCallersIsAnsweredEveryOne) {
  register_product("p1", 5);
  constexpr int kCallers = 16;
  std::atomic<int> answered{0};
  std::promise<void> all;
  for (int i = 0; i < kCallers; ++i)
    checks_.check([&](Result<std::vector<std::string>> r) {
      EXPECT_TRUE(r);
      if (++answered == kCallers) all.set_value();
    });
  EXPECT_EQ(all.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

}  // namespace
}  // namespace orderflow::app
