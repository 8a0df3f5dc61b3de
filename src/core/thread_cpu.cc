#include "core/thread_cpu.h"

#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

namespace orderflow {

namespace {

struct Sample {
  std::string name;
  double seconds = 0;
  std::uint64_t started = 0;  // clock ticks after boot: tells a thread from a later one with its id
};

// A thread's name and CPU time from /proc/self/task/TID/stat; none once it has ended.
std::optional<Sample> sample(const std::filesystem::path& task) {
  std::ifstream in(task / "stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto open = line.find('('), close = line.rfind(')');  // the name may hold spaces and ')'
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;  // fields 14 and 15: utime, stime
  double utime = 0, stime = 0;
  std::uint64_t started = 0;
  if (!(fields >> utime >> stime)) return std::nullopt;
  for (int field = 16; field < 22; ++field) fields >> skip;  // field 22: starttime
  if (!(fields >> started)) return std::nullopt;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return Sample{line.substr(open + 1, close - open - 1), (utime + stime) / ticks, started};
}

}  // namespace

std::map<std::string, double> ThreadCpu::count() {
  std::unordered_map<pid_t, Sample> now;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end; it.increment(ec)) {
    pid_t tid = 0;
    const auto name = it->path().filename().string();
    if (std::from_chars(name.data(), name.data() + name.size(), tid).ec != std::errc{}) continue;
    if (auto s = sample(it->path())) now.emplace(tid, std::move(*s));
  }
  MutexLock lk(mu_);
  for (auto it = live_.begin(); it != live_.end();) {
    auto& seen = it->second;
    const auto found = now.find(it->first);
    if (found == now.end() || found->second.started != seen.started) {  // ended (its id maybe reused)
      gone_[seen.name] += seen.seconds - seen.before;
      it = live_.erase(it);
      continue;
    }
    if (found->second.name != seen.name) {  // renamed itself: what it used so far stays with the old name
      gone_[seen.name] += seen.seconds - seen.before;
      seen.before = seen.seconds;
      seen.name = found->second.name;
    }
    seen.seconds = found->second.seconds;
    ++it;
  }
  for (auto& [tid, s] : now)
    if (!live_.contains(tid)) live_.emplace(tid, Seen{std::move(s.name), s.seconds, 0, s.started});
  std::map<std::string, double> by_name = gone_;
  for (const auto& [tid, seen] : live_) by_name[seen.name] += seen.seconds - seen.before;
  return by_name;
}

}  // namespace orderflow
