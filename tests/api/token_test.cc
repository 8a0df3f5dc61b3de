#include "api/token.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace orderflow::api {
namespace {

// 32 bytes each: "0123456789abcdef0123456789abcdef" and "fedcba9876543210fedcba9876543210".
constexpr std::string_view kKeys =
    "# two keys: rotation\n"
    "k1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
    "\n"
    "k2 = ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA\n";
constexpr std::int64_t kNow = 1'700'000'000;

KeyRing keys() { return KeyRing::parse(kKeys).value(); }

std::string b64url(std::string_view s) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : s) {
    acc = (acc << 8) | c;
    for (bits += 8; bits >= 6;) out += kAlphabet[(acc >> (bits -= 6)) & 0x3f];
  }
  if (bits) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

// A token signed by hand (HMAC-SHA256 with k1's secret) over any header and payload.
std::string signed_by_hand(std::string_view header, std::string_view payload) {
  const std::string key = "0123456789abcdef0123456789abcdef";
  const std::string part = b64url(header) + "." + b64url(payload);
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(part.data()),
       part.size(), mac, &len);
  return part + "." + b64url(std::string_view(reinterpret_cast<const char*>(mac), len));
}

// The token's three segments.
std::vector<std::string> parts(const std::string& token) {
  auto a = token.find('.'), b = token.find('.', a + 1);
  return {token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}

std::string error_of(std::string_view token) {
  auto r = verify_token(token, keys(), kNow);
  if (r) return "verified";
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  return r.error().message;
}

TEST(Token, MintedTokenVerifiesWithEitherKeyOfTheRing) {
  for (std::string_view kid : {"k1", "k2"}) {
    auto token = mint_token({Role::customer, "c-17", kNow + 60}, kid, keys());
    auto claims = verify_token(token, keys(), kNow);
    ASSERT_TRUE(claims) << claims.error().message;
    EXPECT_EQ(claims->role, Role::customer);
    EXPECT_EQ(claims->sub, "c-17");
    EXPECT_EQ(claims->exp, kNow + 60);
  }
  auto admin = verify_token(mint_token({Role::admin, "", kNow + 60}, "k1", keys()), keys(), kNow);
  ASSERT_TRUE(admin);
  EXPECT_EQ(admin->role, Role::admin);
}

TEST(Token, ATamperedPayloadOrSignatureIsRefused) {
  auto p = parts(mint_token({Role::customer, "c-17", kNow + 60}, "k1", keys()));
  const auto forged = b64url(R"({"role":"admin","exp":1800000000})");
  EXPECT_EQ(error_of(p[0] + "." + forged + "." + p[2]), "the token's signature does not match");
  std::string sig = p[2];
  sig[3] = sig[3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(error_of(p[0] + "." + p[1] + "." + sig), "the token's signature does not match");
  EXPECT_EQ(error_of(p[0] + "." + p[1] + "."), "the token's signature does not match");
  // Signed by a key the server does not have, under a kid it does.
  auto other = KeyRing::parse("k1=QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=").value();
  EXPECT_EQ(error_of(mint_token({Role::admin, "", kNow + 60}, "k1", other)), "the token's signature does not match");
}

TEST(Token, AnExpiredTokenOrOneWithoutExpiryIsRefused) {
  EXPECT_EQ(error_of(mint_token({Role::admin, "", kNow}, "k1", keys())), "the token has expired");
  EXPECT_EQ(error_of(mint_token({Role::admin, "", kNow - 3600}, "k2", keys())), "the token has expired");
  constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT","kid":"k1"})";
  EXPECT_EQ(error_of(signed_by_hand(kHeader, R"({"role":"admin","exp":1700000060})")), "verified");
  EXPECT_EQ(error_of(signed_by_hand(kHeader, R"({"role":"admin"})")), "the token has no exp (an integer expiry)");
  EXPECT_EQ(error_of(signed_by_hand(kHeader, R"({"role":"admin","exp":"1800000000"})")),
            "the token has no exp (an integer expiry)");
  EXPECT_EQ(error_of(signed_by_hand(kHeader, R"({"role":"admin","exp":1.8e9})")),
            "the token has no exp (an integer expiry)");
}

TEST(Token, UnknownKidAndMissingKidAreRefused) {
  auto other = KeyRing::parse("k9=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").value();
  EXPECT_EQ(error_of(mint_token({Role::admin, "", kNow + 60}, "k9", other)),
            "the token's kid is not a key of this server");
  auto p = parts(mint_token({Role::admin, "", kNow + 60}, "k1", keys()));
  EXPECT_EQ(error_of(b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + p[1] + "." + p[2]), "the token has no kid");
}

TEST(Token, AlgNoneAndOtherAlgsAreRefusedWhateverTheSignature) {
  auto p = parts(mint_token({Role::admin, "", kNow + 60}, "k1", keys()));
  for (std::string_view alg : {"none", "None", "HS512", "RS256", "hs256", ""}) {
    auto header = b64url(R"({"alg":")" + std::string(alg) + R"(","kid":"k1"})");
    EXPECT_EQ(error_of(header + "." + p[1] + "."), "the token's alg must be HS256") << alg;
    EXPECT_EQ(error_of(header + "." + p[1] + "." + p[2]), "the token's alg must be HS256") << alg;
  }
  EXPECT_EQ(error_of(b64url(R"({"kid":"k1"})") + "." + p[1] + "." + p[2]), "the token's alg must be HS256");
  EXPECT_EQ(error_of(signed_by_hand(R"({"alg":"none","kid":"k1"})", R"({"role":"admin","exp":1700000060})")),
            "the token's alg must be HS256");
}

TEST(Token, MalformedTokensAreRefused) {
  auto p = parts(mint_token({Role::admin, "", kNow + 60}, "k1", keys()));
  EXPECT_EQ(error_of(""), "the token is not a JWT (header.payload.signature)");
  EXPECT_EQ(error_of(p[0] + "." + p[1]), "the token is not a JWT (header.payload.signature)");
  EXPECT_EQ(error_of(p[0] + "." + p[1] + "." + p[2] + ".x"), "the token is not a JWT (header.payload.signature)");
  EXPECT_EQ(error_of("%%%." + p[1] + "." + p[2]), "the token's header is not base64url");
  EXPECT_EQ(error_of(p[0] + "=." + p[1] + "." + p[2]), "the token's header is not base64url");  // no padding
  EXPECT_EQ(error_of("e30." + p[1] + "." + p[2]), "the token's alg must be HS256");  // "{}"
  EXPECT_EQ(error_of(b64url("[1]") + "." + p[1] + "." + p[2]), "the token's header is not a JSON object");
  // A base64url text whose unused low bits are set decodes to the same bytes: refused, so
  // a token has one spelling.
  std::string sig = p[2];
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  sig.back() = alphabet[alphabet.find(sig.back()) | 1];
  EXPECT_EQ(error_of(p[0] + "." + p[1] + "." + sig), "the token's signature does not match");
  EXPECT_EQ(error_of(std::string(5000, 'a')), "the token is longer than 4096 bytes");
}

TEST(Token, RoleAndSubjectAreChecked) {
  auto keyring = keys();
  EXPECT_EQ(error_of(mint_token({Role::customer, "", kNow + 60}, "k1", keyring)),
            "a customer's token needs a sub that is a customer_id");
  EXPECT_EQ(error_of(mint_token({Role::customer, "bad id!", kNow + 60}, "k1", keyring)),
            "a customer's token needs a sub that is a customer_id");
  constexpr std::string_view kHeader = R"({"alg":"HS256","kid":"k1"})";
  EXPECT_EQ(error_of(signed_by_hand(kHeader, R"({"role":"root","exp":1700000060})")),
            "the token's role must be admin, operator or customer");
  EXPECT_EQ(error_of(signed_by_hand(kHeader, R"({"exp":1700000060})")),
            "the token's role must be admin, operator or customer");
  EXPECT_EQ(error_of(signed_by_hand(kHeader, R"({"role":"customer","sub":7,"exp":1700000060})")),
            "a customer's token needs a sub that is a customer_id");
  EXPECT_EQ(error_of(signed_by_hand(kHeader, "not json")), "the token's payload is not a JSON object");
  EXPECT_EQ(role_name(Role::operator_), "operator");
}

TEST(KeyRing, RefusesMalformedFilesNamingTheLine) {
  auto error = [](std::string_view text) {
    auto r = KeyRing::parse(text);
    return r ? std::string("parsed") : r.error().message;
  };
  EXPECT_EQ(error(""), "no keys (expected kid=base64secret lines)");
  EXPECT_EQ(error("# only a comment\n"), "no keys (expected kid=base64secret lines)");
  EXPECT_EQ(error("k1 MDEy\n"), "line 1: expected kid=base64secret");
  EXPECT_EQ(error("\nk 1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"),
            "line 2: a kid is 1-64 characters of [A-Za-z0-9_.-]");
  EXPECT_EQ(error("k1=MDEy*\n"), "line 1: the secret of kid k1 is not base64");
  EXPECT_EQ(error("k1=MDEyMzQ1Njc4OWFiY2RlZg==\n"), "line 1: the secret of kid k1 is shorter than 32 bytes");
  EXPECT_EQ(error("k1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\nk1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"),
            "line 2: kid k1 twice");
  EXPECT_EQ(error("k1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\r\n"), "parsed");
  EXPECT_FALSE(KeyRing::load("/nonexistent/keys"));
}

}  // namespace

// The verifier remembers what it accepted, never what it refused, and a remembered token
// still expires.
TEST(TokenVerifier, ARememberedTokenStillExpiresAndARefusedOneIsCheckedAgainEachTime) {
  const auto ring = keys();
  TokenVerifier verifier(ring);
  const auto token = mint_token({Role::customer, "c-17", kNow + 60}, "k1", ring);
  for (int i = 0; i < 3; ++i) {
    auto claims = verifier.verify(token, kNow);
    ASSERT_TRUE(claims) << claims.error().message;
    EXPECT_EQ(claims->sub, "c-17");
    EXPECT_EQ(claims->role, Role::customer);
  }
  auto late = verifier.verify(token, kNow + 60);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, Errc::invalid_argument);
  EXPECT_EQ(late.error().message, "the token has expired");

  auto p = parts(token);
  const auto tampered = p[0] + "." + p[1] + "." + std::string(p[2].size(), 'A');
  for (int i = 0; i < 2; ++i) {
    auto refused = verifier.verify(tampered, kNow);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message, "the token's signature does not match");
  }
}

TEST(TokenVerifier, ItForgetsEverythingWhenFullAndStillVerifies) {
  const auto ring = keys();
  TokenVerifier verifier(ring);
  for (std::size_t i = 0; i <= TokenVerifier::kCapacity; ++i)
    ASSERT_TRUE(verifier.verify(mint_token({Role::customer, "c-" + std::to_string(i), kNow + 60}, "k2", ring), kNow));
  auto first = verifier.verify(mint_token({Role::customer, "c-0", kNow + 60}, "k2", ring), kNow);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->sub, "c-0");
}

}  // namespace orderflow::api
