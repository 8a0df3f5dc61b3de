// bench http --scenario place-order-confirmed: after the place-order load, waits until no
// saga is running and measures, from the log itself, how many orders reached CONFIRMED
// per second in the measured window and how long each took from OrderPlaced to
// OrderConfirmed (both recorded_at, stamped by the server when the append was accepted).
#include <fmt/core.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <thread>
#include <unordered_map>

#include "cli/bench.h"
#include "core/time.h"

namespace orderflow::cli {

namespace {

namespace json = boost::json;

// Calls fn(event) for every event of `type` in the log.
Result<void> scan_type(const HttpTarget& t, const std::string& type, const std::function<void(const json::object&)>& fn) {
  for (std::int64_t from = 1;;) {
    OF_ASSIGN_OR_RETURN(
        auto answer,
        http_request(t, "GET", fmt::format("/api/v1/admin/events?type={}&limit=1000&from_position={}", type, from),
                     ""));
    if (answer.status != 200) return fail(Errc::internal, "GET /api/v1/admin/events answered " + answer.body);
    auto page = json::parse(answer.body).as_object();
    const auto& events = page.at("events").as_array();
    for (const auto& e : events) fn(e.as_object());
    auto next = page.at("next_from").to_number<std::int64_t>();
    if (events.empty() || next <= from) return {};
    from = next;
  }
}

std::int64_t at_ms(const json::object& e) {
  return parse_rfc3339_ms(std::string_view(e.at("recorded_at").as_string())).value_or(0);
}

}  // namespace

Result<void> measure_confirmations(const HttpTarget& target, const std::string& customer_prefix, std::int64_t from_ms,
                                   std::int64_t to_ms, json::object& out) {
  fmt::print("waiting for the sagas to finish...\n");
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);;) {
    OF_ASSIGN_OR_RETURN(auto answer, http_request(target, "GET", "/api/v1/admin/sagas?state=RUNNING&limit=1", ""));
    if (answer.body.find("order_id") == std::string::npos) break;
    if (std::chrono::steady_clock::now() > deadline) return fail(Errc::unavailable, "sagas still running after 120 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::unordered_map<std::string, std::int64_t> placed;  // stream -> placed at, this run's orders only
  if (auto r = scan_type(target, "OrderPlaced", [&](const json::object& e) {
        if (std::string_view(e.at("data").as_object().at("customer_id").as_string()).starts_with(customer_prefix))
          placed.emplace(std::string(e.at("stream_id").as_string()), at_ms(e));
      });
      !r)
    return r;
  std::vector<double> latencies_ms;
  std::int64_t confirmed = 0, in_window = 0;
  // Confirmations per second of the window, to show whether the rate held throughout.
  std::vector<std::int64_t> per_second(static_cast<std::size_t>(std::max<std::int64_t>((to_ms - from_ms + 999) / 1000, 1)));
  if (auto r = scan_type(target, "OrderConfirmed", [&](const json::object& e) {
        auto it = placed.find(std::string(e.at("stream_id").as_string()));
        if (it == placed.end()) return;
        ++confirmed;
        auto at = at_ms(e);
        if (at < from_ms || at >= to_ms) return;
        ++in_window;
        ++per_second[static_cast<std::size_t>((at - from_ms) / 1000)];
        latencies_ms.push_back(static_cast<double>(at - it->second));
      });
      !r)
    return r;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    return latencies_ms.empty() ? 0.0 : latencies_ms[static_cast<std::size_t>(p * static_cast<double>(latencies_ms.size() - 1))];
  };
  const double seconds = static_cast<double>(to_ms - from_ms) / 1000.0;
  const double per_s = static_cast<double>(in_window) / seconds;
  fmt::print("\n{:<34}{:>12}\n", "orders placed (this run)", placed.size());
  fmt::print("{:<34}{:>12}\n", "orders confirmed (this run)", confirmed);
  fmt::print("{:<34}{:>12.0f}\n", "confirmed/s in the measured window", per_s);
  // The last second may be partial; the slowest full second says whether the rate held.
  const auto full = per_second.size() > 1 ? per_second.size() - 1 : per_second.size();
  const auto slowest = *std::min_element(per_second.begin(), per_second.begin() + static_cast<std::ptrdiff_t>(full));
  fmt::print("{:<34}{:>12}\n", "confirmed in the slowest second", slowest);
  fmt::print("{:<34}{:>12.1f}\n{:<34}{:>12.1f}\n{:<34}{:>12.1f}\n", "place->confirmed p50 ms", pct(0.5),
             "place->confirmed p99 ms", pct(0.99), "place->confirmed max ms", pct(1.0));
  out["placed"] = placed.size();
  out["confirmed"] = confirmed;
  out["confirmed_per_s"] = static_cast<std::int64_t>(per_s);
  out["confirmed_slowest_s"] = slowest;
  out["confirm_p50_ms"] = pct(0.5);
  out["confirm_p99_ms"] = pct(0.99);
  return {};
}

}  // namespace orderflow::cli
