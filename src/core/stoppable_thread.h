// A named thread whose body runs until stop() is asked, sleeping between rounds in
// pause(), which stop() cuts short: the shape of every loop that does some work now and
// then (the relay's, the saga's lease check, the idempotency expiry, a progress line).
//
//   thread_.start("of-relay", [this] {
//     do work(); while (!thread_.pause(kTick));
//   });
//   ...
//   thread_.stop();  // wakes the pause, waits for the round in hand, joins
//
// A loop that also wakes for other reasons (new events, a reader waiting) keeps a
// condition variable of its own, over the state it waits on.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

#include "core/mutex.h"

namespace orderflow {

class StoppableThread {
 public:
  StoppableThread() = default;
  ~StoppableThread() { stop(); }
  StoppableThread(const StoppableThread&) = delete;
  StoppableThread& operator=(const StoppableThread&) = delete;

  // Runs `body` on a new thread named `name` (at most 15 characters). Does nothing while
  // a thread started before has not been stopped.
  void start(const char* name, std::function<void()> body);

  // Asks the body to stop (pause() returns true from now on), wakes a pause in progress
  // and joins. Idempotent; not from the body itself.
  void stop();

  // From the body: waits `d`, or until stop() is asked. True when it is (the body should
  // end). Called with no thread started, it just waits.
  bool pause(std::chrono::nanoseconds d);

  // Started, and stop() not asked yet. From any thread.
  bool running() const;

 private:
  mutable Mutex mu_;
  CondVar cv_;
  bool running_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // start() and stop() only
};

}  // namespace orderflow
