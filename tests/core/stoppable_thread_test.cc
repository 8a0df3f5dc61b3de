#include "core/stoppable_thread.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <string>

namespace orderflow {
namespace {

using namespace std::chrono_literals;

TEST(StoppableThread, RunsItsBodyUnderItsNameUntilStopCutsThePauseShort) {
  StoppableThread t;
  std::atomic<int> rounds{0};
  std::string name;
  t.start("of-test-loop", [&] {
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    name = buf;
    do ++rounds;
    while (!t.pause(1h));
  });
  EXPECT_TRUE(t.running());
  while (rounds == 0) std::this_thread::sleep_for(1ms);
  const auto asked = std::chrono::steady_clock::now();
  t.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 10s) << "stop() woke the hour's pause";
  EXPECT_EQ(rounds, 1);
  EXPECT_EQ(name, "of-test-loop");
  EXPECT_FALSE(t.running());
  t.stop();  // idempotent
}

TEST(StoppableThread, PausesForItsTimeWhenNotStoppedAndStartsAgainAfterAStop) {
  StoppableThread t;
  std::atomic<int> rounds{0};
  auto body = [&] {
    do ++rounds;
    while (!t.pause(1ms));
  };
  t.start("of-test-loop", body);
  while (rounds < 5) std::this_thread::sleep_for(1ms);
  t.stop();
  const int after_first = rounds;
  t.start("of-test-loop", body);
  EXPECT_TRUE(t.running());
  while (rounds < after_first + 5) std::this_thread::sleep_for(1ms);
  t.stop();
  EXPECT_FALSE(t.running());
}

TEST(StoppableThread, APauseWithoutAThreadJustWaits) {
  StoppableThread t;
  const auto from = std::chrono::steady_clock::now();
  EXPECT_FALSE(t.pause(5ms));
  EXPECT_GE(std::chrono::steady_clock::now() - from, 5ms);
}

}  // namespace
}  // namespace orderflow
