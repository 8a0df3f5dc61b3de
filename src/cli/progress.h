// Progress of long work (rebuild, verify, migrate, bench) on a terminal: one line on stderr,
// "rebuild orders: 412000/1000000 events (41%), 260k/s, ETA 2 s", redrawn in place five times a
// second from a counter it samples, and cleared when the work is done. When stderr is not a
// terminal (a pipe, a file, the journal) it draws nothing, so logs and scripts see only results.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "core/stoppable_thread.h"

namespace orderflow::cli {

// The line for `done` of `total` units (total 0: unknown, so no share and no ETA) after
// `elapsed`, counting the rate from `done_at_start`.
std::string progress_line(const std::string& label, std::uint64_t done, std::uint64_t total,
                          std::uint64_t done_at_start, std::chrono::duration<double> elapsed,
                          const std::string& unit = "events");

class Progress {
 public:
  // Samples `done` (called on the drawing thread: it must be safe to call from there) until
  // destroyed; with a terminal on stderr only.
  Progress(std::string label, std::uint64_t total, std::function<std::uint64_t()> done);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Is progress drawn (stderr is a terminal)?
  static bool shown();

 private:
  void draw(std::uint64_t done_at_start, std::chrono::steady_clock::time_point started);

  std::string label_;
  std::uint64_t total_;
  std::function<std::uint64_t()> done_;
  StoppableThread drawer_;
};

}  // namespace orderflow::cli
