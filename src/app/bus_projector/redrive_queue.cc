#include "app/bus_projector/redrive_queue.h"

namespace orderflow::app::bus_projector {

void RedriveQueue::open() {
  MutexLock lk(mu_);
  open_ = true;
}

bool RedriveQueue::push(Request request, const std::string& closed) {
  {
    MutexLock lk(mu_);
    if (open_) {
      requests_.push_back(std::move(request));
      return true;
    }
  }
  request.done(fail(Errc::unavailable, closed));
  return false;
}

bool RedriveQueue::waiting() const {
  MutexLock lk(mu_);
  return !requests_.empty();
}

void RedriveQueue::run(const std::function<Result<Redriven>(const Request&)>& redrive) {
  std::vector<Request> requests;
  {
    MutexLock lk(mu_);
    requests.swap(requests_);
  }
  for (auto& r : requests) r.done(redrive(r));
}

void RedriveQueue::close(const std::string& why) {
  std::vector<Request> left;
  {
    MutexLock lk(mu_);
    open_ = false;
    left.swap(requests_);
  }
  for (auto& r : left) r.done(fail(Errc::unavailable, why));
}

}  // namespace orderflow::app::bus_projector
