// Bearer token parsing (api/token.h). Two ways in, by the first byte:
// - the rest as a token, verified as the server verifies an Authorization header;
// - the rest as "header.payload" (base64url JSON, as the fuzzer makes them) signed here with
//   the key ring's key, so the claims parsing behind the signature check is reached too.
// A token that verifies must give back the same claims once minted again; a key file is
// parsed from the same bytes.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/token.h"

namespace {

using namespace orderflow;
using namespace orderflow::api;

constexpr std::int64_t kNow = 1'800'000'000;
constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";

const KeyRing& keys() {
  // "k1" = base64 of kSecret.
  static const KeyRing ring = *KeyRing::parse("k1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n");
  return ring;
}

// base64url without padding (RFC 7515 §2), for the signature computed here.
std::string base64url(const unsigned char* p, std::size_t n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  for (std::size_t i = 0; i < n; i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (i + 1 < n ? std::uint32_t{p[i + 1]} << 8 : 0) |
                            (i + 2 < n ? std::uint32_t{p[i + 2]} : 0);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    if (i + 1 < n) out += kAlphabet[(v >> 6) & 63];
    if (i + 2 < n) out += kAlphabet[v & 63];
  }
  return out;
}

std::string signed_token(std::string_view signing_input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &len);
  return std::string(signing_input) + "." + base64url(mac, len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string token = data[0] & 1 ? signed_token(rest) : std::string(rest);
  if (auto claims = verify_token(token, keys(), kNow)) {
    auto again = verify_token(mint_token(*claims, "k1", keys()), keys(), kNow);
    if (!again || again->role != claims->role || again->sub != claims->sub || again->exp != claims->exp)
      std::abort();
  }
  (void)KeyRing::parse(rest);
  return 0;
}
