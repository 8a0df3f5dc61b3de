#include "app/personal_data.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <boost/json.hpp>
#include <memory>

#include "core/encoding.h"
#include "core/time.h"

namespace orderflow::app {

namespace {

constexpr std::size_t kKeyBytes = 32, kNonceBytes = 12, kTagBytes = 16;
// The additional data: the form's version and the customer, so a value copied to another
// customer (or another form) does not open.
constexpr std::string_view kAadPrefix = "orderflow personal data v1\n";

// The personal fields whose sealed values reads reveal.
constexpr std::array<std::string_view, 2> kPersonalFields = {"owner", "shipping_address"};

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

std::string aad_of(std::string_view customer_id) {
  std::string aad(kAadPrefix);
  aad += customer_id;
  return aad;
}

// nonce | ciphertext | tag, or nullopt if OpenSSL fails (a bug or no memory).
std::optional<std::string> encrypt(std::string_view key, std::string_view customer_id, std::string_view plaintext) {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(bytes, kNonceBytes) != 1) return std::nullopt;
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  const auto aad = aad_of(customer_id);
  int len = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                         bytes) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), bytes + kNonceBytes, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), bytes + kNonceBytes + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, bytes + kNonceBytes + plaintext.size()) != 1)
    return std::nullopt;
  return out;
}

// The plaintext, or nullopt when `sealed` does not open under `key` (another key, or altered).
std::optional<std::string> decrypt(std::string_view key, std::string_view customer_id, std::string_view sealed) {
  if (key.size() != kKeyBytes || sealed.size() < kNonceBytes + kTagBytes) return std::nullopt;
  const auto* bytes = reinterpret_cast<const unsigned char*>(sealed.data());
  const std::size_t n = sealed.size() - kNonceBytes - kTagBytes;
  std::string out(n, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  const auto aad = aad_of(customer_id);
  std::array<unsigned char, kTagBytes> tag;
  std::copy_n(bytes + kNonceBytes + n, kTagBytes, tag.begin());
  int len = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                         bytes) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, bytes + kNonceBytes,
                        static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &len) <= 0)
    return std::nullopt;
  return out;
}

struct SealedParts {
  std::string_view ciphertext;  // base64url
  std::string_view customer_id;
};

std::optional<SealedParts> parse_sealed(std::string_view value) {
  if (!value.starts_with(kSealedPrefix)) return std::nullopt;
  value.remove_prefix(kSealedPrefix.size());
  const auto colon = value.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == value.size()) return std::nullopt;
  return SealedParts{value.substr(0, colon), value.substr(colon + 1)};
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Is the JSON string starting with the quote at `quote` the value of a personal field?
// (Looks back: `"FIELD"`, blanks, `:`, blanks. An escaped quote is preceded by a
// backslash, never by ':' or a blank, so text inside another string never matches.)
bool personal_field_value(std::string_view json, std::size_t quote) {
  std::size_t i = quote;
  while (i > 0 && is_space(json[i - 1])) --i;
  if (i == 0 || json[i - 1] != ':') return false;
  --i;
  while (i > 0 && is_space(json[i - 1])) --i;
  if (i == 0 || json[i - 1] != '"') return false;
  const std::size_t name_end = i - 1;
  for (auto field : kPersonalFields)
    if (name_end >= field.size() + 1 && json.substr(name_end - field.size(), field.size()) == field &&
        json[name_end - field.size() - 1] == '"')
      return true;
  return false;
}

}  // namespace

ErasureCounts& erasure_counts() {
  static ErasureCounts counts;
  return counts;
}

PersonalData::PersonalData(es::CustomerKeyStore& keys, es::EventStore& store, PersonalDataOptions options)
    : keys_(keys), store_(store), options_(std::move(options)) {
  if (options_.cache_capacity == 0) options_.cache_capacity = 1;
}

std::int64_t PersonalData::now_ms() const { return options_.clock ? options_.clock() : now_unix_ms(); }

Result<std::string> PersonalData::key_of(const std::string& customer_id, bool cached_ok, bool& from_cache) {
  std::uint64_t epoch;
  {
    MutexLock lk(mu_);
    epoch = epoch_;
    if (auto it = cache_.find(customer_id); cached_ok && it != cache_.end()) {
      const auto ttl = options_.cache_ttl.count();
      if (ttl == 0 || now_ms() - it->second.fetched_ms < ttl) {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        from_cache = true;
        return it->second.key;
      }
    }
  }
  from_cache = false;
  auto row = keys_.load_key(customer_id);
  if (!row) return row.error();
  std::string key = *row ? std::move((*row)->key) : std::string();
  remember(customer_id, key, epoch);
  return key;
}

void PersonalData::remember(const std::string& customer_id, std::string key, std::uint64_t epoch) {
  MutexLock lk(mu_);
  if (epoch != epoch_) return;  // an erasure since the fetch: the key may be the erased one
  remember_locked(customer_id, std::move(key));
}

void PersonalData::remember_locked(const std::string& customer_id, std::string key) {
  const auto now = now_ms();
  if (auto it = cache_.find(customer_id); it != cache_.end()) {
    it->second.key = std::move(key);
    it->second.fetched_ms = now;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return;
  }
  if (cache_.size() >= options_.cache_capacity) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(customer_id);
  cache_.emplace(customer_id, Entry{std::move(key), now, lru_.begin()});
}

Result<std::string> PersonalData::seal(const std::string& customer_id, std::string_view plaintext) {
  bool from_cache = false;
  auto key = key_of(customer_id, true, from_cache);
  if (!key) return key.error();
  if (key->empty()) {
    std::uint64_t epoch;
    {
      MutexLock lk(mu_);
      epoch = epoch_;
    }
    std::string candidate(kKeyBytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(candidate.data()), kKeyBytes) != 1)
      return fail(Errc::internal, "no random bytes for a customer key");
    key = keys_.create_key(customer_id, candidate, now_ms());
    if (!key) return key.error();
    remember(customer_id, *key, epoch);
  }
  auto sealed = encrypt(*key, customer_id, plaintext);
  if (!sealed) return fail(Errc::internal, "personal data of customer " + customer_id + " could not be sealed");
  return std::string(kSealedPrefix) + base64url_encode(*sealed) + ":" + customer_id;
}

Result<std::string> PersonalData::open(std::string_view value) {
  auto parts = parse_sealed(value);
  if (!parts) return std::string(value);
  auto bytes = base64_decode(parts->ciphertext, true);
  if (!bytes) return std::string(kErased);
  const std::string customer(parts->customer_id);
  bool from_cache = false;
  auto key = key_of(customer, true, from_cache);
  if (!key) return key.error();
  auto plain = decrypt(*key, customer, *bytes);
  if (!plain && from_cache && !key->empty()) {
    // The cached key may be one erased and replaced since (by another process): ask again.
    key = key_of(customer, false, from_cache);
    if (!key) return key.error();
    plain = decrypt(*key, customer, *bytes);
  }
  return plain ? std::move(*plain) : std::string(kErased);
}

Result<void> PersonalData::reveal(std::string& json) {
  std::size_t at = json.find(kSealedPrefix);
  if (at == std::string::npos) return {};
  std::string out;
  std::size_t copied = 0;
  for (; at != std::string::npos; at = json.find(kSealedPrefix, at + 1)) {
    if (at == 0 || json[at - 1] != '"' || !personal_field_value(json, at - 1)) continue;
    const auto end = json.find('"', at);
    if (end == std::string::npos) break;
    auto plain = open(std::string_view(json).substr(at, end - at));
    if (!plain) return plain.error();
    out.append(json, copied, at - 1 - copied);
    out += boost::json::serialize(boost::json::string_view(plain->data(), plain->size()));
    copied = end + 1;
    at = end;
  }
  if (copied == 0) return {};
  out.append(json, copied, std::string::npos);
  json = std::move(out);
  return {};
}

Result<Erasure> PersonalData::erase(const std::string& customer_id) {
  const auto now = now_ms();
  {
    // From here on no key fetched before is cached: it may be the one erased now.
    MutexLock lk(mu_);
    ++epoch_;
  }
  auto erased = keys_.erase_key(customer_id, now, false);
  if (!erased) return erased.error();
  if (!*erased) {
    auto version = store_.stream_version(es::StreamId("account-" + customer_id));
    if (!version) return version.error();
    if (*version == es::kNoStream)
      return fail(Errc::not_found, "no customer " + customer_id + ": no account and no personal data");
    erased = keys_.erase_key(customer_id, now, true);
    if (!erased) return erased.error();
  }
  {
    // A fetch that began before the erasure was written may still bring the old key.
    MutexLock lk(mu_);
    ++epoch_;
    remember_locked(customer_id, std::string());
  }
  Erasure e{customer_id, (*erased)->erased_at_ms, (*erased)->now};
  (e.now ? erasure_counts().erased : erasure_counts().already_erased).add();
  return e;
}

}  // namespace orderflow::app
