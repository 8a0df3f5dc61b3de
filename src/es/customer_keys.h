// Per-customer data keys for personal data held sealed in events (crypto-shredding,
// app/personal_data.h): the key table lives in the event store's own database, so a
// backup of the store holds the keys of its events, and destroying a key is one row.
//
// Thread safety: every method may be called from any thread at once, and (PostgreSQL)
// from many processes on one database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/result.h"

namespace orderflow::es {

// A customer's row of the key table.
struct CustomerKey {
  std::string key;              // the raw key bytes; empty: erased
  std::int64_t erased_at_ms = 0;  // the last erasure (0: never erased)
};

// What erase_key did.
struct KeyErasure {
  std::int64_t erased_at_ms = 0;  // the erasure that holds: this one, or the earlier one
  bool now = false;               // a key (or a row) was erased by this call
  bool operator==(const KeyErasure&) const = default;
};

class CustomerKeyStore {
 public:
  virtual ~CustomerKeyStore() = default;

  // The customer's row; nullopt when the store never had a key for it.
  virtual Result<std::optional<CustomerKey>> load_key(const std::string& customer_id) = 0;

  // The customer's key, made now from `candidate` if it has none (never had one, or it was
  // erased: new personal data gets a new key, and what the erased one sealed stays
  // unreadable). Insert-or-get: when callers race (threads or processes), every one gets
  // the key stored first. The key is durable before this returns.
  // REQUIRES: !candidate.empty().
  virtual Result<std::string> create_key(const std::string& customer_id, const std::string& candidate,
                                         std::int64_t now_ms) = 0;

  // Destroys the customer's key: its bytes are overwritten (NULL) and erased_at set to
  // `now_ms`, durably. Idempotent: a key erased already keeps its erased_at. Without a row,
  // `record_if_absent` stores an erased one (the customer is known elsewhere, e.g. by its
  // account, but never had personal data sealed); else nothing is written. Answers the
  // erasure that holds afterwards, or nullopt when there was no row and none was recorded.
  virtual Result<std::optional<KeyErasure>> erase_key(const std::string& customer_id, std::int64_t now_ms,
                                                      bool record_if_absent) = 0;
};

}  // namespace orderflow::es
