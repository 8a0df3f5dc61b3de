#include "core/failures.h"

#include <cstdio>
#include <map>
#include <mutex>

namespace orderflow {

namespace {

struct Kind {
  std::uint64_t count = 0;
  std::uint64_t suppressed = 0;  // since the last line printed
  bool failing = false;
  std::chrono::steady_clock::time_point last_printed{};
};

struct Registry {
  std::mutex mu;
  std::map<std::pair<std::string, std::string>, Kind, std::less<>> kinds;
  void (*sink)(std::string_view) = nullptr;
};

// Never destroyed: a background thread may still report while the process exits.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

void emit(Registry& r, const std::string& line) {
  if (r.sink) return r.sink(line);
  std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace

void report_failure(std::string_view component, std::string_view what, std::string_view detail,
                    std::string_view next) {
  auto& r = registry();
  std::lock_guard lk(r.mu);
  auto& k = r.kinds[{std::string(component), std::string(what)}];
  ++k.count;
  const auto now = std::chrono::steady_clock::now();
  if (k.failing && now - k.last_printed < kQuietFor) {
    ++k.suppressed;
    return;
  }
  std::string line = "orderflow: ";
  line.append(component).append(": ").append(what).append(" failed");
  if (!detail.empty()) line.append(": ").append(detail);
  if (!next.empty()) line.append("; ").append(next);
  if (k.suppressed) line.append(" (").append(std::to_string(k.suppressed)).append(" more since the last report)");
  k.suppressed = 0;
  k.failing = true;
  k.last_printed = now;
  emit(r, line);
}

void recovered(std::string_view component, std::string_view what, std::string_view detail) {
  auto& r = registry();
  std::lock_guard lk(r.mu);
  auto it = r.kinds.find(std::pair<std::string, std::string>(component, what));
  if (it == r.kinds.end() || !it->second.failing) return;
  auto& k = it->second;
  std::string line = "orderflow: ";
  line.append(component).append(": ").append(what).append(" works again");
  if (!detail.empty()) line.append(": ").append(detail);
  if (k.suppressed) line.append(" (").append(std::to_string(k.suppressed)).append(" failures since the last report)");
  k.suppressed = 0;
  k.failing = false;
  emit(r, line);
}

std::vector<FailureCount> failure_counts() {
  auto& r = registry();
  std::lock_guard lk(r.mu);
  std::vector<FailureCount> out;
  out.reserve(r.kinds.size());
  for (const auto& [key, k] : r.kinds) out.push_back({key.first, key.second, k.count, k.failing});
  return out;
}

void set_failure_sink(void (*sink)(std::string_view line)) {
  auto& r = registry();
  std::lock_guard lk(r.mu);
  r.sink = sink;
}

}  // namespace orderflow
