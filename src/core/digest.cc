#include "core/digest.h"

#include <openssl/evp.h>

#include "core/check.h"

namespace orderflow {

namespace {

class Digest {
 public:
  explicit Digest(const char* name) : md_(EVP_MD_fetch(nullptr, name, nullptr)), ctx_(EVP_MD_CTX_new()) {
    OF_CHECK(md_ && ctx_, "OpenSSL has no such digest, or no memory for its context");
  }
  ~Digest() {
    EVP_MD_CTX_free(ctx_);
    EVP_MD_free(md_);
  }
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;

  template <std::size_t N>
  std::array<unsigned char, N> of(std::initializer_list<std::string_view> parts) {
    std::array<unsigned char, N> out{};
    unsigned int n = 0;
    bool ok = EVP_DigestInit_ex2(ctx_, md_, nullptr) == 1;
    for (auto part : parts) ok = ok && EVP_DigestUpdate(ctx_, part.data(), part.size()) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx_, out.data(), &n) == 1;
    OF_CHECK(ok && n == N, "a digest failed");
    return out;
  }

 private:
  EVP_MD* md_;
  EVP_MD_CTX* ctx_;
};

}  // namespace

std::array<unsigned char, 20> sha1(std::initializer_list<std::string_view> parts) {
  thread_local Digest d("SHA1");
  return d.of<20>(parts);
}

std::array<unsigned char, 32> sha256(std::initializer_list<std::string_view> parts) {
  thread_local Digest d("SHA256");
  return d.of<32>(parts);
}

}  // namespace orderflow
