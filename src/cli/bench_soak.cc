// orderflow bench soak: starts `orderflow serve` on a data directory (filled first to
// --events if it holds fewer), times it to /readyz 200, then runs a steady mixed load
// (orders placed and cancelled, deposits, reads) and prints the server's RSS every 10 s and
// how fast it grew over the last half of the run: memory that keeps growing shows as a
// slope, memory that is bounded levels off (docs/design.md: RSS <= 150 MB serving 10M events,
// /readyz within 2 s of starting on them).
#include <fmt/core.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "api/http/load_generator.h"
#include "cli/bench.h"
#include "store/sqlite/sqlite_event_store.h"

extern char** environ;

namespace orderflow::cli {

namespace {

using Clock = std::chrono::steady_clock;

// VmRSS of `pid` in MiB; 0 if it is gone.
double rss_mib(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmRSS:")) return std::stod(line.substr(6)) / 1024;
  return 0;
}

// The least-squares slope of (t, rss) in MiB per minute.
double slope_per_min(const std::vector<std::pair<double, double>>& samples) {
  if (samples.size() < 2) return 0;
  double n = static_cast<double>(samples.size()), st = 0, sr = 0, stt = 0, str = 0;
  for (auto [t, r] : samples) st += t, sr += r, stt += t * t, str += t * r;
  const double d = n * stt - st * st;
  return d == 0 ? 0 : (n * str - st * sr) / d * 60;
}

// A running `orderflow serve`, stopped with SIGTERM when this goes.
struct Server {
  pid_t pid = -1;
  int out = -1;  // its stdout
  ~Server() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    if (out >= 0) ::close(out);
  }
};

Result<void> start_server(const std::string& binary, const std::string& data, Server& server) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return fail(Errc::internal, "pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::string exe = binary.empty() ? std::filesystem::read_symlink("/proc/self/exe").string() : binary;
  std::vector<std::string> args{exe, "serve", "--data", data, "--listen", "127.0.0.1:0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawn(&server.pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  server.out = pipe_fds[0];
  if (rc != 0) {
    server.pid = -1;
    return fail(Errc::internal, fmt::format("cannot start {}: {}", exe, std::strerror(rc)));
  }
  return {};
}

// The port from serve's "orderflow: serving http://HOST:PORT (...)" line.
Result<std::uint16_t> read_port(int fd) {
  std::string text;
  char buf[256];
  for (;;) {
    auto at = text.find("serving http://");
    if (auto end = text.find(" (", at); at != std::string::npos && end != std::string::npos) {
      auto colon = text.rfind(':', end);
      return static_cast<std::uint16_t>(std::stoi(text.substr(colon + 1, end - colon - 1)));
    }
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return fail(Errc::unavailable, "the server stopped before serving: " + text);
    text.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

int bench_soak(const SoakBenchOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.data, ec);
  if (ec) return runtime_failure("cannot create " + o.data + ": " + ec.message());
  if (o.events > 0) {
    sqlite::SqliteEventStoreOptions options;
    options.path = (std::filesystem::path(o.data) / "events.db").string();
    auto store = sqlite::SqliteEventStore::open(options);
    if (!store) return runtime_failure(store.error().message);
    if (auto r = fill_store(**store, o.events); !r) return runtime_failure(r.error().message);
    (*store)->close();
  }

  Server server;
  const auto started = Clock::now();
  if (auto r = start_server(o.binary, o.data, server); !r) return runtime_failure(r.error().message);
  auto port = read_port(server.out);
  if (!port) return runtime_failure(port.error().message);
  const HttpTarget target{"127.0.0.1", *port};
  for (;;) {
    auto answer = http_request(target, "GET", "/readyz", "");
    if (answer && answer->status == 200) break;
    if (Clock::now() - started > std::chrono::minutes(10)) return runtime_failure("/readyz not 200 after 10 min");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double ready_s = std::chrono::duration<double>(Clock::now() - started).count();
  const double rss_ready = rss_mib(server.pid);
  fmt::print("bench soak: serve on {} ready (/readyz 200) in {:.2f} s, RSS {:.1f} MiB\n", o.data, ready_s,
             rss_ready);

  auto catalogue = seed_catalogue(target, true);
  if (!catalogue) return runtime_failure(catalogue.error().message);
  const auto& c = *catalogue;

  // 20 requests in turn: 8 orders placed, 2 cancels of orders placed 200 requests
  // before, 3 deposits, 4 order reads, 2 product reads, 1 list of a customer's orders.
  // Order ids are the client's, so that cancels and reads name orders that exist.
  const auto run_hex = c.run.substr(0, 8);
  auto order_id = [&](std::uint64_t seq) {
    return fmt::format("{}-{:04x}-7000-8000-{:012x}", run_hex, (seq >> 48) & 0xffff, seq & 0xffffffffffffULL);
  };
  const std::uint64_t kBack = 200;  // a multiple of 20: seq - kBack - slot is a place
  http::LoadOptions load;
  load.host = target.host;
  load.port = target.port;
  load.scenario = "soak";
  load.connections = o.connections;
  load.duration = std::chrono::milliseconds(static_cast<std::int64_t>(o.minutes * 60'000));
  load.rate = o.rate;
  auto factory = [&](std::uint64_t seq, std::mt19937_64& rng) {
    http::LoadRequest req;
    const auto slot = seq % 20;
    const bool back = seq >= kBack + 20;
    // Cancels (slots 8, 9) take the orders of slots 0 and 1, reads (13-16) those of 2-5.
    const auto earlier = !back ? 0 : slot < 13 ? seq - kBack - 8 : seq - kBack - 11;
    if (slot < 8 || (!back && slot < 17)) {
      req.method = http::Method::post;
      req.target = "/api/v1/orders";
      std::string items;
      for (std::uint64_t l = 0, lines = 1 + rng() % 3; l < lines; ++l)
        items += fmt::format(R"({}{{"product_id":"{}","quantity":{}}})", l ? "," : "", c.product(rng()), 1 + rng() % 3);
      req.body = fmt::format(R"({{"order_id":"{}","customer_id":"{}","items":[{}]}})", order_id(seq),
                             c.customer(seq), items);
    } else if (slot < 10) {
      req.method = http::Method::post;
      req.target = "/api/v1/orders/" + order_id(earlier) + "/cancel";
      req.body = R"({"reason":"soak"})";
    } else if (slot < 13) {
      req.method = http::Method::post;
      req.target = "/api/v1/accounts/" + c.customer(rng()) + "/deposit";
      req.body = fmt::format(R"({{"amount_cents":{}}})", 1 + rng() % 100);
    } else if (slot < 17) {
      req.target = "/api/v1/orders/" + order_id(earlier);
    } else if (slot < 19) {
      req.target = "/api/v1/products/" + c.product(rng());
    } else {
      req.target = "/api/v1/orders?limit=20&customer_id=" + c.customer(rng());
    }
    return req;
  };

  std::atomic<bool> done{false};
  Result<http::LoadReport> report = fail(Errc::internal, "no load ran");
  std::thread loader([&] {
    report = http::run_load(load, factory);
    done = true;
  });
  const double rss_seeded = rss_mib(server.pid);
  fmt::print("{:>8} {:>10}\n", "seconds", "RSS MiB");
  fmt::print("{:>8} {:>10.1f}\n", 0, rss_seeded);
  std::vector<std::pair<double, double>> samples{{0.0, rss_seeded}};
  const auto load_start = Clock::now();
  auto next = load_start + std::chrono::seconds(10);
  while (!done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (Clock::now() < next) continue;
    next += std::chrono::seconds(10);
    const double t = std::chrono::duration<double>(Clock::now() - load_start).count();
    samples.emplace_back(t, rss_mib(server.pid));
    fmt::print("{:>8.0f} {:>10.1f}\n", t, samples.back().second);
    std::fflush(stdout);
  }
  loader.join();
  if (!report) return runtime_failure(report.error().message);
  http::print_report(std::cout, *report);

  const double total = samples.back().first;
  std::vector<std::pair<double, double>> last_half;
  for (const auto& s : samples)
    if (s.first >= total / 2) last_half.push_back(s);
  double peak = 0;
  for (const auto& s : samples) peak = std::max(peak, s.second);
  const double slope = slope_per_min(last_half);
  fmt::print("RSS: {:.1f} MiB ready, {:.1f} MiB seeded, {:.1f} MiB at the end, {:.1f} MiB peak; "
             "last half {:+.2f} MiB/min\n",
             rss_ready, rss_seeded, samples.back().second, peak, slope);
  auto json = http::to_json(*report);
  json["bench"] = "soak";
  json["ready_s"] = ready_s;
  json["rss_ready_mib"] = rss_ready;
  json["rss_end_mib"] = samples.back().second;
  json["rss_peak_mib"] = peak;
  json["rss_slope_last_half_mib_per_min"] = slope;
  std::cout << boost::json::serialize(json) << std::endl;
  return 0;
}

}  // namespace orderflow::cli
