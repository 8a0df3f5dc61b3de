#include "cli/progress.h"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace orderflow::cli {

namespace {

constexpr auto kRedraw = std::chrono::milliseconds(200);

// 950, 12.3k, 4.1M
std::string si(double v) {
  if (v >= 1e6) return fmt::format("{:.1f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.0f}k", v / 1e3);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

// 7 s, 3 min 05 s, 2 h 10 min
std::string duration(double seconds) {
  auto s = static_cast<std::uint64_t>(std::ceil(seconds));
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{} min {:02} s", s / 60, s % 60);
  return fmt::format("{} h {:02} min", s / 3600, s % 3600 / 60);
}

}  // namespace

std::string progress_line(const std::string& label, std::uint64_t done, std::uint64_t total,
                          std::uint64_t done_at_start, std::chrono::duration<double> elapsed, const std::string& unit) {
  std::string line = fmt::format("{}: {}", label, done);
  // What is left after the last unit (a migration's commit) has no rate to show.
  if (total > 0 && done >= total) return line + fmt::format("/{} {} (100%), finishing", total, unit);
  if (total > 0)
    line += fmt::format("/{} {} ({}%)", total, unit, std::min<std::uint64_t>(100, done * 100 / total));
  else
    line += " " + unit;
  const double rate = elapsed.count() > 0 && done > done_at_start ? (done - done_at_start) / elapsed.count() : 0;
  if (rate > 0) {
    line += fmt::format(", {}/s", si(rate));
    if (total > done) line += ", ETA " + duration((total - done) / rate);
  }
  return line;
}

bool Progress::shown() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, std::uint64_t total, std::function<std::uint64_t()> done)
    : label_(std::move(label)), total_(total), done_(std::move(done)) {
  if (!shown()) return;
  drawer_.start("of-progress", [this, started = std::chrono::steady_clock::now(), at_start = done_()] {
    do draw(at_start, started);
    while (!drawer_.pause(kRedraw));
    std::fputs("\r\033[K", stderr);  // the line goes: what follows is the result
    std::fflush(stderr);
  });
}

Progress::~Progress() { drawer_.stop(); }

void Progress::draw(std::uint64_t done_at_start, std::chrono::steady_clock::time_point started) {
  auto line = progress_line(label_, done_(), total_, done_at_start, std::chrono::steady_clock::now() - started);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

}  // namespace orderflow::cli
