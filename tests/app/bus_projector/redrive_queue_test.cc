// The retries a bus consumer is asked for (app/bus_projector/redrive_queue.h): queued while
// it runs and done, in the order asked, by run(); answered unavailable while it is closed
// and when it closes with retries left.
#include "app/bus_projector/redrive_queue.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace orderflow::app::bus_projector {
namespace {

TEST(RedriveQueue, RetriesWaitForRunWhileOpenAndAreAnsweredUnavailableWhenClosed) {
  RedriveQueue queue;
  std::vector<std::optional<Result<Redriven>>> answers(4);
  auto request = [&](std::size_t i) {
    return RedriveQueue::Request{"dl-" + std::to_string(i), "operator",
                                 [&answers, i](Result<Redriven> r) { answers[i] = std::move(r); }};
  };
  EXPECT_FALSE(queue.push(request(0), "not running"));
  ASSERT_TRUE(answers[0]);
  EXPECT_EQ(answers[0]->error().code, Errc::unavailable);
  EXPECT_EQ(answers[0]->error().message, "not running");

  queue.open();
  EXPECT_TRUE(queue.push(request(1), "not running"));
  EXPECT_TRUE(queue.push(request(2), "not running"));
  EXPECT_TRUE(queue.waiting());
  EXPECT_FALSE(answers[1]) << "answered before it was done";
  std::vector<std::string> done;
  queue.run([&](const RedriveQueue::Request& r) -> Result<Redriven> {
    done.push_back(r.id);
    return Redriven{.dead_letter_id = r.id};
  });
  EXPECT_EQ(done, (std::vector<std::string>{"dl-1", "dl-2"}));
  ASSERT_TRUE(answers[1] && *answers[1]);
  EXPECT_EQ((*answers[1])->dead_letter_id, "dl-1");
  EXPECT_FALSE(queue.waiting());

  EXPECT_TRUE(queue.push(request(3), "not running"));
  queue.close("stopping");
  ASSERT_TRUE(answers[3]);
  EXPECT_EQ(answers[3]->error().message, "stopping");
  EXPECT_FALSE(queue.waiting());
}

}  // namespace
}  // namespace orderflow::app::bus_projector
