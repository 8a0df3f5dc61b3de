#include "core/stoppable_thread.h"

#include "core/named_thread.h"

namespace orderflow {

void StoppableThread::start(const char* name, std::function<void()> body) {
  if (thread_.joinable()) return;
  {
    MutexLock lk(mu_);
    running_ = true;
    stopping_ = false;
  }
  thread_ = named_thread(name, std::move(body));
}

void StoppableThread::stop() {
  if (!thread_.joinable()) return;
  {
    MutexLock lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  MutexLock lk(mu_);
  running_ = false;
}

bool StoppableThread::pause(std::chrono::nanoseconds d) {
  MutexLock lk(mu_);
  return cv_.wait_for(mu_, d, [&]() REQUIRES(mu_) { return stopping_; });
}

bool StoppableThread::running() const {
  MutexLock lk(mu_);
  return running_ && !stopping_;
}

}  // namespace orderflow
