#include "core/thread_cpu.h"

#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace orderflow {

std::optional<ProcStat> read_proc_stat(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto open = line.find('('), close = line.rfind(')');  // the name may hold spaces and ')'
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;  // fields 14 and 15: utime, stime
  std::uint64_t utime = 0, stime = 0, started = 0;
  if (!(fields >> utime >> stime)) return std::nullopt;
  for (int field = 16; field < 22; ++field) fields >> skip;  // field 22: starttime
  if (!(fields >> started)) return std::nullopt;
  return ProcStat{line.substr(open + 1, close - open - 1), utime + stime, started};
}

std::map<std::string, double> ThreadCpu::count() {
  std::unordered_map<pid_t, ProcStat> now;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end; it.increment(ec)) {
    pid_t tid = 0;
    const auto name = it->path().filename().string();
    if (std::from_chars(name.data(), name.data() + name.size(), tid).ec != std::errc{}) continue;
    if (auto s = read_proc_stat(it->path() / "stat")) now.emplace(tid, std::move(*s));
  }
  MutexLock lk(mu_);
  for (auto it = live_.begin(); it != live_.end();) {
    auto& seen = it->second;
    const auto found = now.find(it->first);
    if (found == now.end() || found->second.started != seen.started) {  // ended (its id maybe reused)
      gone_[seen.name] += seen.ticks - seen.before;
      it = live_.erase(it);
      continue;
    }
    if (found->second.name != seen.name) {  // renamed itself: what it used so far stays with the old name
      gone_[seen.name] += seen.ticks - seen.before;
      seen.before = seen.ticks;
      seen.name = found->second.name;
    }
    seen.ticks = found->second.cpu_ticks;
    ++it;
  }
  for (auto& [tid, s] : now)
    if (!live_.contains(tid)) live_.emplace(tid, Seen{std::move(s.name), s.cpu_ticks, 0, s.started});
  std::map<std::string, std::uint64_t> ticks = gone_;
  for (const auto& [tid, seen] : live_) ticks[seen.name] += seen.ticks - seen.before;
  static const double per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::map<std::string, double> seconds;
  for (const auto& [name, t] : ticks) seconds.emplace(name, static_cast<double>(t) / per_second);
  return seconds;
}

}  // namespace orderflow
