#include "core/otlp_exporter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>

namespace orderflow {
namespace {

namespace json = boost::json;

Span sample_span() {
  Span s;
  s.context = *parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  s.parent_span_id = "b7ad6b7169203331";
  s.name = "POST /api/v1/orders";
  s.kind = Span::Kind::server;
  s.start_unix_ns = 1'700'000'000'123'456'789;
  s.end_unix_ns = 1'700'000'000'223'456'789;
  s.attributes = {{"http.route", std::string("/api/v1/orders")}, {"http.response.status_code", std::int64_t{202}}};
  return s;
}

TEST(OtlpJson, FollowsTheProtobufJsonMapping) {
  Span root = sample_span();
  root.parent_span_id.clear();
  root.error = true;
  root.status_message = "HTTP 503";
  const Span spans[] = {sample_span(), root};
  auto v = json::parse(otlp_json(spans, {.endpoint = "http://x", .service_version = "0.1.0"}));
  const auto& rs = v.at("resourceSpans").at(0);
  EXPECT_EQ(rs.at("resource").at("attributes"),
            json::parse(R"([{"key":"service.name","value":{"stringValue":"orderflow"}}])"));
  const auto& ss = rs.at("scopeSpans").at(0);
  EXPECT_EQ(ss.at("scope"), json::parse(R"({"name":"orderflow","version":"0.1.0"})"));
  const auto& s = ss.at("spans").at(0).as_object();
  EXPECT_EQ(s.at("traceId"), "4bf92f3577b34da6a3ce929d0e0e4736");  // hex, not base64
  EXPECT_EQ(s.at("spanId"), "00f067aa0ba902b7");
  EXPECT_EQ(s.at("parentSpanId"), "b7ad6b7169203331");
  EXPECT_EQ(s.at("kind"), 2);                                      // SPAN_KIND_SERVER
  EXPECT_EQ(s.at("startTimeUnixNano"), "1700000000123456789");    // fixed64: a string
  EXPECT_EQ(s.at("endTimeUnixNano"), "1700000000223456789");
  EXPECT_EQ(s.at("attributes"), json::parse(R"([{"key":"http.route","value":{"stringValue":"/api/v1/orders"}},
                                                {"key":"http.response.status_code","value":{"intValue":"202"}}])"));
  EXPECT_FALSE(s.contains("status"));  // UNSET is the default, left out
  const auto& r = ss.at("spans").at(1).as_object();
  EXPECT_FALSE(r.contains("parentSpanId"));
  EXPECT_EQ(r.at("status"), json::parse(R"({"code":2,"message":"HTTP 503"})"));
}

// A port that takes connections into its backlog and never answers.
class BlackHole {
 public:
  BlackHole() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~BlackHole() { ::close(fd_); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  int port_ = 0;
};

TEST(OtlpExporter, DropsAndCountsPastItsQueueWithoutWaiting) {
  BlackHole hole;
  OtlpExporter exporter({.endpoint = hole.url(),
                         .max_queue = 10,
                         .max_batch = 100,  // never full: nothing leaves before the destructor
                         .interval = std::chrono::hours(1),
                         .timeout = std::chrono::milliseconds(200)});
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 15; ++i) exporter.take(sample_span());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(100));
  const auto c = exporter.counts();
  EXPECT_EQ(c.dropped_queue_full, 5u);
  EXPECT_EQ(c.dropped_export_failed, 0u);
  EXPECT_EQ(c.exported, 0u);
}

TEST(OtlpExporter, CountsAFailedSendAndWhatItDropped) {
  BlackHole hole;
  OtlpExporter exporter({.endpoint = hole.url(),
                         .max_batch = 4,
                         .interval = std::chrono::milliseconds(10),
                         .timeout = std::chrono::milliseconds(200)});
  for (int i = 0; i < 4; ++i) exporter.take(sample_span());
  for (int waited = 0; exporter.counts().export_failures == 0 && waited < 5000; waited += 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto c = exporter.counts();
  EXPECT_EQ(c.export_failures, 1u);
  EXPECT_EQ(c.dropped_export_failed, 4u);
  EXPECT_EQ(c.exported, 0u);
}

}  // namespace
}  // namespace orderflow
