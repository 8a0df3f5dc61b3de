// The retries of a bus consumer's dead letters (BusDeadLetterSource::redrive), asked from
// any thread and done on the consumer's thread between two fetches: BusProjector's and
// saga::BusSagaFeed's. Open while the consumer runs; a retry asked while it is closed, or
// left waiting when it closes, is answered unavailable.
//
// Thread safety: any thread; run() on the consumer's thread. Its lock is taken inside the
// owner's (waiting(), in the owner's wait), never around it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "app/bus_projector/bus_dead_letters.h"
#include "core/mutex.h"

namespace orderflow::app::bus_projector {

class RedriveQueue {
 public:
  struct Request {
    std::string id, actor;
    std::function<void(Result<Redriven>)> done;
  };

  void open() EXCLUDES(mu_);
  // Queues `request` and answers true while open (the owner then wakes its thread); else
  // answers the request unavailable, `closed`, and false.
  bool push(Request request, const std::string& closed) EXCLUDES(mu_);
  // Whether a retry waits for run().
  bool waiting() const EXCLUDES(mu_);
  // Does each retry waiting with `redrive` and answers it with what that returns.
  void run(const std::function<Result<Redriven>(const Request&)>& redrive) EXCLUDES(mu_);
  // Closes it: the retries left are answered unavailable, `why`.
  void close(const std::string& why) EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  bool open_ GUARDED_BY(mu_) = false;
  std::vector<Request> requests_ GUARDED_BY(mu_);
};

}  // namespace orderflow::app::bus_projector
