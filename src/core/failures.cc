#include "core/failures.h"

#include <map>
#include <mutex>

#include "core/mutex.h"
#include "core/log.h"

namespace orderflow {

namespace {

struct Kind {
  std::uint64_t count = 0;
  std::uint64_t suppressed = 0;  // since the last line printed
  bool failing = false;
  std::chrono::steady_clock::time_point last_printed{};
};

struct Registry {
  Mutex mu;
  std::map<std::pair<std::string, std::string>, Kind, std::less<>> kinds GUARDED_BY(mu);
};

// Never destroyed: a background thread may still report while the process exits.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

}  // namespace

void report_failure(std::string_view component, std::string_view what, std::string_view detail,
                    std::string_view next) {
  auto& r = registry();
  MutexLock lk(r.mu);
  auto& k = r.kinds[{std::string(component), std::string(what)}];
  ++k.count;
  const auto now = std::chrono::steady_clock::now();
  if (k.failing && now - k.last_printed < kQuietFor) {
    ++k.suppressed;
    return;
  }
  std::string message(what);
  message.append(" failed");
  if (!detail.empty()) message.append(": ").append(detail);
  if (!next.empty()) message.append("; ").append(next);
  log::error(component, message, {{"failure", what}, {"count", k.count}, {"suppressed", k.suppressed}});
  k.suppressed = 0;
  k.failing = true;
  k.last_printed = now;
}

void recovered(std::string_view component, std::string_view what, std::string_view detail) {
  auto& r = registry();
  MutexLock lk(r.mu);
  auto it = r.kinds.find(std::pair<std::string, std::string>(component, what));
  if (it == r.kinds.end() || !it->second.failing) return;
  auto& k = it->second;
  std::string message(what);
  message.append(" works again");
  if (!detail.empty()) message.append(": ").append(detail);
  log::info(component, message, {{"failure", what}, {"count", k.count}, {"suppressed", k.suppressed}});
  k.suppressed = 0;
  k.failing = false;
}

std::vector<FailureCount> failure_counts() {
  auto& r = registry();
  MutexLock lk(r.mu);
  std::vector<FailureCount> out;
  out.reserve(r.kinds.size());
  for (const auto& [key, k] : r.kinds) out.push_back({key.first, key.second, k.count, k.failing});
  return out;
}

}  // namespace orderflow
