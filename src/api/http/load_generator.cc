#include "api/http/load_generator.h"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/object.hpp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <ostream>
#include <thread>

#include "core/latency.h"

namespace orderflow::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

struct Plan {
  const RequestFactory& factory;
  tcp::endpoint endpoint;
  std::string host_header;
  Clock::time_point measure_from;  // end of the warm-up
  Clock::time_point end;
  Clock::time_point start;  // of the warm-up
  double rate = 0;          // LoadOptions::rate
  std::atomic<std::uint64_t> seq{0};

  // When request `n` may be sent (the start with no rate).
  Clock::time_point turn(std::uint64_t n) const {
    if (rate <= 0) return start;
    return start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(static_cast<double>(n) / rate));
  }
};

// One io thread and what its connections count; touched by that thread only until joined.
struct Lane {
  explicit Lane(std::uint64_t seed) : rng(seed) {}
  asio::io_context ioc{1};
  std::mt19937_64 rng;
  LatencySamples latency;  // of 2xx answers
  std::uint64_t responses[6] = {};
  std::uint64_t refused_503 = 0;
  std::uint64_t transport_errors = 0;
  int running = 0;  // connections not yet finished
};

void serialize(const LoadRequest& r, const std::string& host, std::string& out) {
  out.assign(method_name(r.method)).append(" ").append(r.target).append(" HTTP/1.1\r\nHost: ");
  out.append(host).append("\r\n");
  bool typed = false;
  for (const auto& [name, value] : r.headers) {
    typed = typed || iequals(name, "content-type");
    out.append(name).append(": ").append(value).append("\r\n");
  }
  const bool with_body = !r.body.empty() || r.method == Method::post || r.method == Method::put ||
                         r.method == Method::patch;
  if (with_body) out.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n");
  if (with_body && !typed) out.append("Content-Type: application/json\r\n");
  out.append("\r\n").append(r.body);
}

asio::awaitable<void> connection(Lane& lane, Plan& plan) {
  tcp::socket socket(lane.ioc);
  asio::steady_timer pause(lane.ioc);
  beast::flat_buffer buffer;
  std::string out;
  error_code ignored;
  auto failed = [&] {
    ++lane.transport_errors;
    socket.close(ignored);
    buffer.clear();
  };
  while (Clock::now() < plan.end) {
    if (!socket.is_open()) {
      auto [ec] = co_await socket.async_connect(plan.endpoint, nothrow);
      if (ec) {
        failed();
        pause.expires_after(std::chrono::milliseconds(10));  // don't spin on a dead server
        co_await pause.async_wait(nothrow);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ignored);
    }
    const auto n = plan.seq.fetch_add(1, std::memory_order_relaxed);
    if (const auto at = plan.turn(n); at > Clock::now()) {
      if (at >= plan.end) break;
      pause.expires_at(at);
      co_await pause.async_wait(nothrow);
    }
    const LoadRequest request = plan.factory(n, lane.rng);
    serialize(request, plan.host_header, out);

    const auto start = Clock::now();
    auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(out), nothrow);
    if (wec) {
      failed();
      continue;
    }
    bhttp::response_parser<bhttp::string_body> parser;
    if (request.method == Method::head) parser.skip(true);
    auto [rec, rn] = co_await bhttp::async_read(socket, buffer, parser, nothrow);
    const auto now = Clock::now();
    if (rec) {
      failed();
      continue;
    }
    if (now >= plan.measure_from && now <= plan.end) {
      const unsigned status_class = parser.get().result_int() / 100;
      if (status_class >= 1 && status_class <= 5) {
        ++lane.responses[status_class];
        if (parser.get().result_int() == 503) ++lane.refused_503;
      } else {
        ++lane.transport_errors;
      }
      if (status_class == 2)
        lane.latency.record(std::chrono::duration_cast<std::chrono::nanoseconds>(now - start));
    }
    if (!parser.get().keep_alive()) socket.close(ignored);
  }
}

}  // namespace

Result<LoadReport> run_load(const LoadOptions& o, const RequestFactory& factory) {
  if (o.connections < 1 || o.io_threads < 1 || o.duration.count() <= 0)
    return fail(Errc::invalid_argument, "load generator: connections, io_threads and duration must be positive");
  if (o.rate < 0) return fail(Errc::invalid_argument, "load generator: rate must not be negative");

  const std::string where = o.host + ":" + std::to_string(o.port);
  asio::io_context setup;
  error_code ec;
  tcp::resolver resolver(setup);
  auto endpoints = resolver.resolve(o.host, std::to_string(o.port), ec);
  if (ec || endpoints.empty()) return fail(Errc::invalid_argument, "cannot resolve " + where + ": " + ec.message());
  tcp::socket probe(setup);
  const auto endpoint = asio::connect(probe, endpoints, ec);
  if (ec) return fail(Errc::unavailable, "cannot connect to " + where + ": " + ec.message());
  probe.close(ec);

  const auto start = Clock::now();
  Plan plan{factory, endpoint, where, start + o.warmup, start + o.warmup + o.duration, start, o.rate};

  std::vector<std::unique_ptr<Lane>> lanes;
  for (int i = 0; i < o.io_threads; ++i) lanes.push_back(std::make_unique<Lane>(o.seed + static_cast<std::uint64_t>(i)));
  for (int c = 0; c < o.connections; ++c) {
    Lane& lane = *lanes[static_cast<std::size_t>(c % o.io_threads)];
    ++lane.running;
    asio::co_spawn(lane.ioc, connection(lane, plan), [&lane](std::exception_ptr) {
      if (--lane.running == 0) lane.ioc.stop();  // stops the grace timer's wait too
    });
  }
  // Abandon connections whose server never answers.
  std::vector<std::unique_ptr<asio::steady_timer>> graces;
  for (auto& lane : lanes) {
    auto& t = *graces.emplace_back(std::make_unique<asio::steady_timer>(lane->ioc, plan.end + o.grace));
    t.async_wait([ioc = &lane->ioc](error_code) { ioc->stop(); });
  }
  std::vector<std::thread> threads;
  for (auto& lane : lanes) threads.emplace_back([ioc = &lane->ioc] { ioc->run(); });
  for (auto& t : threads) t.join();

  LoadReport r;
  r.scenario = o.scenario;
  r.connections = o.connections;
  r.rate = o.rate;
  r.seconds = std::chrono::duration<double>(o.duration).count();
  LatencySamples latency;
  for (const auto& lane : lanes) {
    latency.merge(lane->latency);
    for (int i = 0; i < 6; ++i) r.responses[i] += lane->responses[i];
    r.refused_503 += lane->refused_503;
    r.transport_errors += lane->transport_errors;
  }
  r.requests_per_s = static_cast<double>(r.ok()) / r.seconds;
  r.p50_us = latency.percentile_us(0.50);
  r.p90_us = latency.percentile_us(0.90);
  r.p99_us = latency.percentile_us(0.99);
  r.p999_us = latency.percentile_us(0.999);
  r.max_us = latency.percentile_us(1.0);
  return r;
}

void print_report(std::ostream& out, const LoadReport& r) {
  char line[256];
  std::snprintf(line, sizeof line, "http load  scenario %s, %d connections, %.1f s measured\n",
                r.scenario.c_str(), r.connections, r.seconds);
  out << line;
  std::snprintf(line, sizeof line, "  %12s %10s %10s %10s %10s %12s\n", "2xx", "1xx/3xx", "4xx", "5xx",
                "transport", "2xx req/s");
  out << line;
  std::snprintf(line, sizeof line, "  %12llu %10llu %10llu %10llu %10llu %12.1f\n",
                static_cast<unsigned long long>(r.responses[2]),
                static_cast<unsigned long long>(r.responses[1] + r.responses[3]),
                static_cast<unsigned long long>(r.responses[4]),
                static_cast<unsigned long long>(r.responses[5]),
                static_cast<unsigned long long>(r.transport_errors), r.requests_per_s);
  out << line;
  if (r.refused_503 > 0) {
    std::snprintf(line, sizeof line, "  503 (try again later): %llu, %.1f%% of the answers\n",
                  static_cast<unsigned long long>(r.refused_503),
                  100.0 * static_cast<double>(r.refused_503) / static_cast<double>(r.ok() + r.non_2xx()));
    out << line;
  }
  std::snprintf(line, sizeof line, "  latency of 2xx (us): %8s %8s %8s %8s %8s\n", "p50", "p90", "p99",
                "p99.9", "max");
  out << line;
  std::snprintf(line, sizeof line, "                       %8.0f %8.0f %8.0f %8.0f %8.0f\n", r.p50_us,
                r.p90_us, r.p99_us, r.p999_us, r.max_us);
  out << line;
}

boost::json::object to_json(const LoadReport& r) {
  auto whole = [](double v) { return static_cast<std::int64_t>(std::llround(v)); };
  boost::json::object j;
  j["bench"] = "http";
  j["scenario"] = r.scenario;
  j["connections"] = r.connections;
  if (r.rate > 0) j["rate"] = whole(r.rate);
  j["duration_ms"] = whole(r.seconds * 1000);
  j["requests_per_s"] = whole(r.requests_per_s);
  j["p50_us"] = whole(r.p50_us);
  j["p90_us"] = whole(r.p90_us);
  j["p99_us"] = whole(r.p99_us);
  j["p999_us"] = whole(r.p999_us);
  j["max_us"] = whole(r.max_us);
  j["ok"] = r.ok();
  j["non_2xx"] = r.non_2xx();
  j["refused_503"] = r.refused_503;
  const auto answered = r.ok() + r.non_2xx();
  j["refused_share"] = answered ? static_cast<double>(r.refused_503) / static_cast<double>(answered) : 0.0;
  j["transport_errors"] = r.transport_errors;
  return j;
}

}  // namespace orderflow::http
