// The invariants of docs/api.md §5, checked by folding the whole event store. They hold at
// every quiet moment (no command in flight, no saga in a non-final state); `orderflow
// verify`, the saga simulation test and the admin endpoint call this.
#pragma once

#include <string>
#include <vector>

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
// A store that cannot be read is reported as a violation.
std::vector<std::string> check_invariants(es::EventStore& store);

}  // namespace orderflow::app
