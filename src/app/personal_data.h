// Personal data sealed in events, and its erasure (crypto-shredding; docs/api.md §7).
//
// What a customer gives as personal data (an account's `owner`, an order's
// `shipping_address`) is sealed before the command is decided: the command, its events,
// the aggregate states, snapshots and read-model documents all hold the sealed form,
//   "of:sealed:v1:" BASE64URL(nonce[12] | ciphertext | tag[16]) ":" CUSTOMER_ID
// AES-256-GCM under the customer's key (es/customer_keys.h), a random nonce, the customer
// id in the additional data (a value moved to another customer does not open). The domain
// never looks inside: it keeps the value as the text it is.
//
// Reads reveal at the edges (HTTP answers, the live feed, the bus, `orderflow events`):
// each sealed value of a personal field becomes its plaintext, or "[erased]" once the
// customer's key is destroyed. So erasure changes what every read shows at once, rebuilt
// read models included, and writes nothing else: no event is rewritten, and the hash
// chain (over the stored, sealed bytes) and every total stay as they were.
//
// Thread safety: every method may be called from any thread at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/metric.h"
#include "core/mutex.h"
#include "core/result.h"
#include "es/customer_keys.h"
#include "es/event_store.h"

namespace orderflow::app {

// What reads show in place of personal data whose key is gone.
inline constexpr std::string_view kErased = "[erased]";
// The sealed form's prefix; its version is the form's.
inline constexpr std::string_view kSealedPrefix = "of:sealed:v1:";

struct PersonalDataOptions {
  // Customers whose key (or its erasure) is kept in memory, least recently used first out:
  // 32 bytes and the id each, so 10000 are about 1 MB.
  std::size_t cache_capacity = 10000;
  // How long a cached key is used without asking the store again. 0: for ever, for a store
  // only this process writes (SQLite: an erasure here updates the cache). On a store other
  // processes share (PostgreSQL), an erasure there is seen here within this time.
  std::chrono::milliseconds cache_ttl{0};
  // Unix milliseconds now; empty: the wall clock.
  std::function<std::int64_t()> clock;
};

// Erasures answered, for /metrics.
struct ErasureCounts {
  Counter erased;          // a key destroyed now
  Counter already_erased;  // asked again: nothing left to destroy
};
ErasureCounts& erasure_counts();

struct Erasure {
  std::string customer_id;
  std::int64_t erased_at_ms = 0;  // the (first) erasure, the same for every repeat
  bool now = false;               // false: it was erased already
};

class PersonalData {
 public:
  // `keys` and `store` must outlive this. `store` says whether a customer without personal
  // data exists (its account).
  PersonalData(es::CustomerKeyStore& keys, es::EventStore& store, PersonalDataOptions options = {});

  // `plaintext` sealed under the customer's key, made now if it has none (or it was
  // erased: new data gets a new key). Errors: the key store's (unavailable).
  Result<std::string> seal(const std::string& customer_id, std::string_view plaintext);

  // Rewrites in place every sealed value of a personal field (`owner`, `shipping_address`)
  // in the JSON text `json` (event JSON, read-model documents, pages of them, compact or
  // not) to its plaintext, or to "[erased]" when the customer's key is erased, missing, or
  // does not open it. Text without the sealed prefix costs one search. Errors: the key
  // store's, leaving `json` as it was.
  Result<void> reveal(std::string& json);

  // Destroys the customer's key (es::CustomerKeyStore::erase_key), so nothing sealed under
  // it can be read again. Idempotent. A customer with an account but no personal data
  // sealed is recorded as erased; one the store knows neither way is Errc::not_found.
  Result<Erasure> erase(const std::string& customer_id);

  // The plaintext of one sealed value, or kErased; a value not in the sealed form is
  // answered as it is. For tests and tools.
  Result<std::string> open(std::string_view value);

 private:
  struct Entry {
    std::string key;  // empty: erased (or never made)
    std::int64_t fetched_ms = 0;
    std::list<std::string>::iterator lru;
  };
  // The customer's key from the cache when fresh (and `cached_ok`), else from the store;
  // empty when erased or absent. `from_cache` says which.
  Result<std::string> key_of(const std::string& customer_id, bool cached_ok, bool& from_cache);
  // Caches `key`, unless an erasure happened since `epoch` was read.
  void remember(const std::string& customer_id, std::string key, std::uint64_t epoch);
  void remember_locked(const std::string& customer_id, std::string key) REQUIRES(mu_);
  std::int64_t now_ms() const;

  es::CustomerKeyStore& keys_;
  es::EventStore& store_;
  PersonalDataOptions options_;

  Mutex mu_;
  std::unordered_map<std::string, Entry> cache_ GUARDED_BY(mu_);
  std::list<std::string> lru_ GUARDED_BY(mu_);  // most recent first
  // Counts erasures in this process: a key fetched before one is not cached after it (it
  // may be the key just erased).
  std::uint64_t epoch_ GUARDED_BY(mu_) = 0;
};

}  // namespace orderflow::app
