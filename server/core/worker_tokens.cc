#include "server/core/worker_tokens.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tuneledger {

WorkerTokens::WorkerTokens(const std::string& key) {
  if (key.empty()) return;
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> hmac(EVP_MAC_fetch(nullptr, "HMAC", nullptr),
                                                         &EVP_MAC_free);
  if (hmac == nullptr) return;
  std::shared_ptr<EVP_MAC_CTX> keyed(EVP_MAC_CTX_new(hmac.get()), &EVP_MAC_CTX_free);
  if (keyed == nullptr) return;
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(keyed.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   params) != 1) {
    return;
  }
  keyed_ = std::move(keyed);
}

std::string WorkerTokens::Mac(const std::string& message) const {
  if (keyed_ == nullptr) return "";
  // EVP_MAC_CTX_dup only reads its source, so threads may copy the shared context at once.
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> mac(EVP_MAC_CTX_dup(keyed_.get()),
                                                                &EVP_MAC_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  size_t length = 0;
  if (mac == nullptr ||
      EVP_MAC_update(mac.get(), reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1 ||
      EVP_MAC_final(mac.get(), digest, &length, sizeof(digest)) != 1) {
    return "";  // no token: every comparison with it fails
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string WorkerTokens::Session(const std::string& worker_id) const {
  return Mac(absl::StrCat("session", absl::string_view("\0", 1), worker_id));
}

std::string WorkerTokens::Lease(const std::string& job_id, int attempt,
                                const std::string& worker_id) const {
  const absl::string_view nul("\0", 1);
  return Mac(absl::StrCat("lease", nul, job_id, nul, attempt, nul, worker_id));
}

bool WorkerTokens::Matches(const std::string& expected, const std::string& given) {
  if (expected.empty() || expected.size() != given.size()) return false;
  return CRYPTO_memcmp(expected.data(), given.data(), expected.size()) == 0;
}

}  // namespace tuneledger
