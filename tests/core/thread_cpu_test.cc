#include "core/thread_cpu.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <functional>

#include "core/named_thread.h"

namespace orderflow {
namespace {

// Spins until this thread has used `seconds` of CPU more.
void burn(double seconds) {
  auto used = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  const double until = used() + seconds;
  while (used() < until) {
  }
}

double of(const std::map<std::string, double>& by_name, const std::string& name) {
  auto it = by_name.find(name);
  return it == by_name.end() ? 0 : it->second;
}

// A thread that runs each step it is given, one at a time, and says when it is done.
class Worker {
 public:
  explicit Worker(const std::string& name) : thread_(named_thread(name, [this] { loop(); })) {}
  ~Worker() {
    run(nullptr);
    thread_.join();
  }
  void run(std::function<void()> step) {  // nullptr: end
    step_ = std::move(step);
    turn_.store(1);
    turn_.notify_one();
    turn_.wait(1);
  }

 private:
  void loop() {
    for (;;) {
      turn_.wait(0);
      const bool last = !step_;
      if (!last) step_();
      turn_.store(0);
      turn_.notify_one();
      if (last) return;
    }
  }

  std::function<void()> step_;
  std::atomic<int> turn_{0};
  std::thread thread_;
};

TEST(ThreadCpu, CountsEachThreadUnderItsName) {
  ThreadCpu cpu;
  Worker w("of-t-burner");
  w.run([] { burn(0.15); });
  const double seen = of(cpu.count(), "of-t-burner");
  EXPECT_GE(seen, 0.13);
  EXPECT_LT(seen, 1.0);
}

TEST(ThreadCpu, AThreadThatEndedKeepsWhatItUsed) {
  ThreadCpu cpu;
  double seen = 0;
  {
    Worker w("of-t-ended");
    w.run([] { burn(0.15); });
    seen = of(cpu.count(), "of-t-ended");
    ASSERT_GE(seen, 0.13);
  }
  EXPECT_EQ(of(cpu.count(), "of-t-ended"), seen);  // gone from /proc, not from the count
}

TEST(ThreadCpu, ARenamedThreadLeavesWhatItUsedWithItsFirstName) {
  ThreadCpu cpu;
  Worker w("of-t-first");
  w.run([] { burn(0.15); });
  const double first = of(cpu.count(), "of-t-first");
  ASSERT_GE(first, 0.13);
  w.run([] {
    pthread_setname_np(pthread_self(), "of-t-second");
    burn(0.15);
  });
  const auto after = cpu.count();
  EXPECT_EQ(of(after, "of-t-first"), first);
  EXPECT_GE(of(after, "of-t-second"), 0.13);
  EXPECT_LT(of(after, "of-t-second"), first + 0.2);  // its CPU under the first name is not counted again
}

}  // namespace
}  // namespace orderflow
