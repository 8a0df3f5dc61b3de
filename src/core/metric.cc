#include "core/metric.h"

#include <fmt/format.h>

namespace orderflow {

void append_histogram(std::string& out, std::string_view metric, std::string_view labels, const HistogramSnapshot& h) {
  auto it = std::back_inserter(out);
  const std::string_view sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < h.bounds.size(); ++i)
    fmt::format_to(it, "{}_bucket{{{}{}le=\"{}\"}} {}\n", metric, labels, sep, h.bounds[i], h.cumulative[i]);
  fmt::format_to(it, "{}_bucket{{{}{}le=\"+Inf\"}} {}\n", metric, labels, sep, h.count);
  const auto braced = labels.empty() ? std::string() : fmt::format("{{{}}}", labels);
  fmt::format_to(it, "{}_sum{} {}\n{}_count{} {}\n", metric, braced, h.sum, metric, braced, h.count);
}

}  // namespace orderflow
