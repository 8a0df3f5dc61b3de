// A closed-loop HTTP load generator: C keep-alive connections, each with one request in
// flight, for a fixed time, on its own io threads. Used by `orderflow bench http …`.
//
//   http::LoadOptions o{.port = server.port(), .scenario = "get_order", .connections = 64};
//   auto report = http::run_load(o, [](std::uint64_t seq, std::mt19937_64&) {
//     return http::LoadRequest{.target = "/api/v1/orders/" + ids[seq % ids.size()]};
//   });
//   if (report) {
//     http::print_report(std::cerr, *report);
//     std::cout << boost::json::serialize(http::to_json(*report)) << '\n';
//   }
#pragma once

#include <boost/json/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "api/http/message.h"
#include "core/result.h"

namespace orderflow::http {

struct LoadRequest {
  Method method = Method::get;  // not Method::other
  std::string target = "/";
  // Host and Content-Length are added; a body without a Content-Type is sent as JSON.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Makes request number `seq` (0, 1, 2, … across all connections). Called from the
// generator's io threads, concurrently when io_threads > 1; `rng` is the calling
// thread's own, seeded from LoadOptions::seed.
using RequestFactory = std::function<LoadRequest(std::uint64_t seq, std::mt19937_64& rng)>;

struct LoadOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::string scenario = "http";
  int connections = 64;
  std::chrono::milliseconds duration{10'000};  // measured
  std::chrono::milliseconds warmup{0};         // run before, not measured
  int io_threads = 1;
  // Requests per second over all connections; 0: as fast as the connections go. Request
  // number n is not sent before start + n / rate (a connection idles until its turn), so
  // the server sees a steady rate as long as it keeps up; when it falls behind, requests go
  // out as soon as a connection is free. Latency is measured from the send.
  double rate = 0;
  std::uint64_t seed = 1;
  // Requests still unanswered this long after the end are abandoned.
  std::chrono::milliseconds grace{2'000};
};

struct LoadReport {
  std::string scenario;
  int connections = 0;
  double rate = 0;                  // LoadOptions::rate asked for
  double seconds = 0;               // the measured window
  std::uint64_t responses[6] = {};  // by status class: [2] = 2xx, …, [5] = 5xx; [0], [1] unused
  std::uint64_t refused_503 = 0;       // of the 5xx: 503 (unavailable, overloaded: try again later)
  std::uint64_t transport_errors = 0;  // failed connects, reads, writes; unparsable answers
  // Over 2xx answers only; any other answer is an error, counted above.
  double requests_per_s = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;  // whole microseconds

  std::uint64_t ok() const { return responses[2]; }
  std::uint64_t non_2xx() const { return responses[1] + responses[3] + responses[4] + responses[5]; }
};

// Fails (Errc::invalid_argument / unavailable) if the options are unusable or the first
// connection cannot be made; later failures are counted in transport_errors.
Result<LoadReport> run_load(const LoadOptions& options, const RequestFactory& factory);

// A readable table, several lines.
void print_report(std::ostream& out, const LoadReport& report);

// {"bench":"http","scenario":…,"requests_per_s":…,"p50_us":…,"p99_us":…,…}, numbers as
// integers; the CLI may add fields before printing it as the final line.
boost::json::object to_json(const LoadReport& report);

}  // namespace orderflow::http
