// Query parameters: the query string parser (http::parse_query) and the integer parameters
// every listing reads through api::int_param (limits, cursors, positions, waits). A parsed
// query, percent-encoded again, parses to the same pairs; an accepted integer is within its
// range and is the text's value.
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/query_params.h"

namespace {

using namespace orderflow;

std::string percent_encoded(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) out.append({'%', kHex[c >> 4], kHex[c & 15]});
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view query(reinterpret_cast<const char*>(data), size);
  http::Request req;
  if (!http::parse_query(query, req.query)) return 0;
  std::string again;
  for (std::size_t i = 0; i < req.query.size(); ++i)
    again += (i ? "&" : "") + percent_encoded(req.query[i].first) + "=" + percent_encoded(req.query[i].second);
  http::Params reparsed;
  if (!http::parse_query(again, reparsed) || reparsed.size() != req.query.size()) std::abort();
  for (std::size_t i = 0; i < reparsed.size(); ++i)
    if (reparsed[i] != req.query[i]) std::abort();
  for (auto [name, min, max] : {std::tuple{"limit", 1, 1000}, std::tuple{"cursor", 0, INT32_MAX},
                                std::tuple{"from_position", 0, INT32_MAX}, std::tuple{"wait_ms", 0, 10000}}) {
    auto n = api::int_param(req, name, -1, min, max);
    if (!n || *n == -1) continue;
    std::int64_t expected = 0;
    const auto text = *req.query_param(name);
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), expected);
    if (*n < min || *n > max || ec != std::errc() || end != text.data() + text.size() || expected != *n) std::abort();
  }
  return 0;
}
