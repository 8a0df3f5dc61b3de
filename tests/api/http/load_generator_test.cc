#include "api/http/load_generator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json/serialize.hpp>
#include <cstdlib>
#include <iostream>

#include "api/http/server.h"

namespace orderflow::http {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class LoadGeneratorTest : public ::testing::Test {
 protected:
  void start(int io_threads = 2) {
    Router r;
    r.add(Method::get, "/hello", [this](Request&) -> asio::awaitable<Response> {
      ++handled_;
      co_return json_response(200, R"({"hello":"world"})");
    });
    r.add(Method::post, "/items/{id}", [this](Request& req) -> asio::awaitable<Response> {
      ++handled_;
      const bool ok = req.header("x-seq").has_value() && req.body == "{\"id\":\"" + std::string(req.param("id")) + "\"}";
      co_return json_response(ok ? 201 : 400, "{}");
    });
    auto s = HttpServer::listen(std::move(r), {.io_threads = io_threads});
    ASSERT_TRUE(s) << s.error().message;
    server_.emplace(std::move(*s));
    server_->start();
  }
  std::atomic<std::uint64_t> handled_{0};
  std::optional<HttpServer> server_;
};

TEST_F(LoadGeneratorTest, CountsAnswersByClassAndMeasuresLatency) {
  start();
  const LoadOptions o{.port = server_->port(), .scenario = "mixed", .connections = 8,
                      .duration = 500ms, .warmup = 100ms};
  auto report = run_load(o, [](std::uint64_t seq, std::mt19937_64&) {
    if (seq % 10 == 0) return LoadRequest{.target = "/missing"};  // 404: an error
    if (seq % 2 == 0) return LoadRequest{.target = "/hello"};
    const std::string id = std::to_string(seq);
    return LoadRequest{.method = Method::post, .target = "/items/" + id,
                       .headers = {{"X-Seq", id}}, .body = "{\"id\":\"" + id + "\"}"};
  });
  ASSERT_TRUE(report) << report.error().message;
  const auto& r = *report;
  print_report(std::cerr, r);
  EXPECT_EQ(r.transport_errors, 0u);
  EXPECT_EQ(r.responses[5], 0u);
  EXPECT_EQ(r.responses[4], r.non_2xx());
  const std::uint64_t answered = r.ok() + r.non_2xx();
  ASSERT_GT(answered, 100u);
  // Every 10th request is a 404; the window cuts at most a few per connection at each end.
  EXPECT_NEAR(static_cast<double>(r.responses[4]), static_cast<double>(answered) / 10.0, 2.0 * o.connections);
  // The server handled what was counted, plus the warm-up and the unmeasured tail.
  EXPECT_GE(handled_.load() + r.responses[4], answered);
  EXPECT_NEAR(r.requests_per_s, static_cast<double>(r.ok()) / 0.5, 1.0);
  EXPECT_GT(r.p50_us, 0.0);
  EXPECT_LE(r.p50_us, r.p90_us);
  EXPECT_LE(r.p90_us, r.p99_us);
  EXPECT_LE(r.p99_us, r.max_us);

  const auto j = to_json(r);
  EXPECT_EQ(j.at("bench"), "http");
  EXPECT_EQ(j.at("scenario"), "mixed");
  EXPECT_EQ(j.at("non_2xx").as_uint64(), r.non_2xx());
  for (const char* key : {"requests_per_s", "p50_us", "p90_us", "p99_us", "max_us", "transport_errors"})
    EXPECT_TRUE(j.contains(key)) << key;
}

TEST_F(LoadGeneratorTest, CountsExactlyWhatTheServerAnswered) {
  start();
  // Without warm-up, everything the server answered was counted except at most one
  // answer per connection arriving after the end.
  const LoadOptions o{.port = server_->port(), .connections = 4, .duration = 300ms};
  auto report = run_load(o, [](std::uint64_t, std::mt19937_64&) { return LoadRequest{.target = "/hello"}; });
  ASSERT_TRUE(report);
  server_->stop();
  server_->join();
  EXPECT_EQ(report->non_2xx(), 0u);
  EXPECT_LE(report->ok(), handled_.load());
  EXPECT_GE(report->ok() + o.connections, handled_.load());
}

TEST_F(LoadGeneratorTest, ARateSpacesRequestsOverTime) {
  start();
  // 400 requests/s for 500 ms: about 200, though 8 connections could send many thousands.
  const LoadOptions o{.port = server_->port(), .connections = 8, .duration = 500ms, .warmup = 100ms, .rate = 400};
  auto report = run_load(o, [](std::uint64_t, std::mt19937_64&) { return LoadRequest{.target = "/hello"}; });
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_NEAR(static_cast<double>(report->ok()), 200.0, 30.0);
  EXPECT_NEAR(report->requests_per_s, 400.0, 60.0);
  EXPECT_EQ(to_json(*report).at("rate").as_int64(), 400);
  EXPECT_LE(handled_.load(), 260u);  // the warm-up's 40 and the window's 200, give or take a few
}

TEST_F(LoadGeneratorTest, UnreachableServerIsAnError) {
  start();
  const auto port = server_->port();
  server_->stop();
  server_->join();
  auto report = run_load({.port = port, .duration = 100ms},
                         [](std::uint64_t, std::mt19937_64&) { return LoadRequest{}; });
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code, Errc::unavailable);
}

// A benchmark, not a check: run with
//   ./build/tests/api_tests --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
// OF_BENCH_SECONDS and OF_BENCH_CONNECTIONS override the defaults (5 s, 64).
TEST_F(LoadGeneratorTest, DISABLED_TrivialHandlerThroughput) {
  start();
  auto env = [](const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v ? std::atoi(v) : fallback;
  };
  const LoadOptions o{.port = server_->port(), .scenario = "trivial",
                      .connections = env("OF_BENCH_CONNECTIONS", 64),
                      .duration = std::chrono::seconds(env("OF_BENCH_SECONDS", 5)), .warmup = 1s};
  auto report = run_load(o, [](std::uint64_t, std::mt19937_64&) { return LoadRequest{.target = "/hello"}; });
  ASSERT_TRUE(report);
  print_report(std::cerr, *report);
  std::cout << boost::json::serialize(to_json(*report)) << '\n';
}

}  // namespace
}  // namespace orderflow::http
