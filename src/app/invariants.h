// The invariants of docs/api.md §5, checked by folding the whole event store. They hold at
// every quiet moment (no command in flight, no saga in a non-final state); `orderflow
// verify`, the saga simulation test and the admin endpoint call this.
#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/mutex.h"
#include "es/event_store.h"

namespace orderflow::app {

// One human-readable sentence per violation (empty: all hold). Checked:
// - per product 0 <= reserved <= on_hand;
// - per account balance_cents >= 0 and balance = deposits - withdrawals - charges + refunds;
// - per order: charged at most once; net charged = total_cents if CONFIRMED, SHIPPED or
//   DELIVERED, 0 if CANCELLED; a CANCELLED order's payment_status is REFUNDED if it was
//   charged, DECLINED if its charge was declined, else PENDING;
// - a CANCELLED, SHIPPED or DELIVERED order holds no stock, a CONFIRMED one holds exactly
//   its lines; every order is CONFIRMED, SHIPPED, DELIVERED or CANCELLED (none PENDING).
// A store that cannot be read is an error (its own), never a violation.
Result<std::vector<std::string>> check_invariants(es::EventStore& store);

using InvariantsCallback = std::function<void(Result<std::vector<std::string>>)>;

// The invariants checked for a caller that must not block (an HTTP io thread): the fold of
// the whole log runs on a thread of its own. Every answer comes from a check that started
// after it was asked for; callers who ask while a check runs share the next one, so a burst
// of requests costs at most two folds. `done` runs on that thread.
class InvariantChecks {
 public:
  explicit InvariantChecks(es::EventStore& store) : store_(store) {}
  // Waits for the running check, answers whoever waits, then returns.
  ~InvariantChecks();
  InvariantChecks(const InvariantChecks&) = delete;
  InvariantChecks& operator=(const InvariantChecks&) = delete;

  void check(InvariantsCallback done);

 private:
  void run();

  es::EventStore& store_;
  Mutex mu_;
  CondVar cv_;
  std::vector<InvariantsCallback> waiting_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_ GUARDED_BY(mu_);  // started by the first check
};

}  // namespace orderflow::app
