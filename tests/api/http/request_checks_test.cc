#include "api/http/request_checks.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <string_view>

#include "api/http/server.h"

namespace orderflow::http {
namespace {

// Parses `head` as the server does, then checks its framing.
std::optional<std::string> framing(std::string_view head) {
  RequestParser parser;
  limit_parser(parser, kDefaultHeaderLimit, kDefaultBodyLimit);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(head.data(), head.size()), ec);
  EXPECT_TRUE(!ec || ec == boost::beast::http::error::need_more) << ec.message();
  EXPECT_TRUE(parser.is_header_done());
  return ambiguous_framing(parser);
}

TEST(HttpRequestChecks, DefaultsAreTheServers) {
  EXPECT_EQ(ServerOptions{}.body_limit, kDefaultBodyLimit);
  EXPECT_EQ(ServerOptions{}.header_limit, kDefaultHeaderLimit);
}

TEST(HttpRequestChecks, FramingAcceptsOneFraming) {
  EXPECT_FALSE(framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_FALSE(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"));
  EXPECT_FALSE(framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n"));
}

TEST(HttpRequestChecks, FramingRefusesCodingsOtherThanChunkedAlone) {
  for (std::string_view te : {"gzip", "chunked, gzip", "gzip, chunked", "xchunked", "chunked, chunked"}) {
    const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + std::string(te) + "\r\n\r\n";
    EXPECT_TRUE(framing(head)) << te;
  }
  EXPECT_TRUE(framing(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"));
}

// Found by fuzzing (tests/fuzz/http_request_fuzz.cc): a Transfer-Encoding listing no coding
// beside a Content-Length was accepted and the body framed by Content-Length, though a
// parser in front could read the request otherwise. Input:
// "POST /v1/orders HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: ,\r\nContent-Length: 2\r\n\r\n{}"
TEST(HttpRequestChecks, FramingRefusesAnEmptyTransferEncodingBesideContentLength) {
  EXPECT_TRUE(framing(
      "POST /v1/orders HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: ,\r\nContent-Length: 2\r\n\r\n{}"));
  EXPECT_TRUE(framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n"));
}

TEST(HttpRequestChecks, HostAllowedIgnoresThePort) {
  const std::vector<std::string> allowed = {"localhost", "[::1]"};
  EXPECT_TRUE(host_allowed("localhost", allowed));
  EXPECT_TRUE(host_allowed("LOCALHOST:8080", allowed));
  EXPECT_TRUE(host_allowed("[::1]:8080", allowed));
  EXPECT_TRUE(host_allowed("[::1]", allowed));
  EXPECT_FALSE(host_allowed("evil.example", allowed));
  EXPECT_FALSE(host_allowed(std::nullopt, allowed));
  EXPECT_FALSE(host_allowed("localhost:80:80", allowed));
}

// Found by fuzzing (tests/fuzz/http_request_fuzz.cc): whatever followed the last colon was
// taken for a port. Input: Host "localhost:80\x8c0".
TEST(HttpRequestChecks, HostAllowedWantsADigitsPort) {
  const std::vector<std::string> allowed = {"localhost"};
  EXPECT_FALSE(host_allowed("localhost:80\x8c" "0", allowed));
  EXPECT_FALSE(host_allowed("localhost:http", allowed));
  EXPECT_TRUE(host_allowed("localhost:", allowed));  // RFC 9110 §7.2: port = *DIGIT
}

TEST(HttpRequestChecks, IsJsonIgnoresParameters) {
  EXPECT_TRUE(is_json("application/json"));
  EXPECT_TRUE(is_json("Application/JSON ; charset=utf-8"));
  EXPECT_FALSE(is_json("application/json-patch+json"));
  EXPECT_FALSE(is_json(std::nullopt));
}

}  // namespace
}  // namespace orderflow::http
