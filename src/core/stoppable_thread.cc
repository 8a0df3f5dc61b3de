#include "core/stoppable_thread.h"

#include <pthread.h>

#include <string>

namespace orderflow {

void StoppableThread::start(const char* name, std::function<void()> body) {
  if (thread_.joinable()) return;
  {
    MutexLock lk(mu_);
    running_ = true;
    stopping_ = false;
  }
  thread_ = std::thread([name = std::string(name), body = std::move(body)] {
    pthread_setname_np(pthread_self(), name.c_str());
    body();
  });
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
