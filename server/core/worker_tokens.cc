#include "server/core/worker_tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tuneledger {

std::string WorkerTokens::Mac(const std::string& message) const {
  if (key_.empty()) return "";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest,
           &length) == nullptr) {
    return "";  // no token: every comparison with it fails
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(length)));
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
