// named_thread: a std::thread that names itself before it runs `body`, as `top -H`, perf
// and /proc/PID/task show it (at most 15 characters are kept). Without a name a thread has
// its creator's, so work started from another thread is counted as that thread's.
#pragma once

#include <pthread.h>

#include <string>
#include <thread>
#include <utility>

namespace orderflow {

template <class Body>
std::thread named_thread(std::string name, Body body) {
  return std::thread([name = std::move(name), body = std::move(body)]() mutable {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    body();
  });
}

}  // namespace orderflow
