// CPU time of this process's threads by name (named_thread), from /proc/self/task: which
// work takes the CPU (HTTP, the writer, the sync, the saga, each projection), for /metrics.
//
// Each name's total never goes down, as a counter must: a thread that ended keeps the CPU
// it had used when last counted, and a thread that took another name keeps what it used
// under the first. What a thread used after the last count before it ended is not counted,
// nor a thread that started and ended between two counts.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/mutex.h"

namespace orderflow {

// What /proc/PID/stat or /proc/PID/task/TID/stat says of a process or thread; none if it
// cannot be read (it has ended).
struct ProcStat {
  std::string name;
  std::uint64_t cpu_ticks = 0;  // user and system CPU time, in clock ticks (sysconf(_SC_CLK_TCK))
  std::uint64_t started = 0;    // clock ticks after boot
};
std::optional<ProcStat> read_proc_stat(const std::string& path);

class ThreadCpu {
 public:
  // Seconds of CPU (user and system) by thread name, threads of one name summed.
  std::map<std::string, double> count() EXCLUDES(mu_);

 private:
  struct Seen {
    std::string name;
    std::uint64_t ticks = 0;   // the thread's whole CPU time when last counted (clock ticks)
    std::uint64_t before = 0;  // of that, what it used under earlier names
    std::uint64_t started = 0;
  };

  Mutex mu_;
  std::unordered_map<pid_t, Seen> live_ GUARDED_BY(mu_);
  std::map<std::string, std::uint64_t> gone_ GUARDED_BY(mu_);  // ticks by name: threads ended or renamed
};

}  // namespace orderflow
