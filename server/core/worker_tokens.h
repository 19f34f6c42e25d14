// The tokens that tie WorkerService calls to what the server issued (worker.proto):
//   session token = HMAC-SHA256(key, "session\0" worker_id)
//   lease token   = HMAC-SHA256(key, "lease\0" job_id "\0" attempt "\0" worker_id)
// as lowercase hex. The key is the job store's "worker-tokens" server key, so tokens issued
// before a restart verify after it, and nothing but the key needs storing. Knowing one worker's
// tokens tells nothing about another's or about another attempt's.
// Each token is computed from an HMAC context keyed once at construction and copied per token
// (keying it per token cost three times as much: the intake checks a lease token per report).
// Thread safety: immutable after construction; safe from any thread.
#ifndef TUNELEDGER_SERVER_CORE_WORKER_TOKENS_H_
#define TUNELEDGER_SERVER_CORE_WORKER_TOKENS_H_

#include <openssl/types.h>

#include <memory>
#include <string>

namespace tuneledger {

class WorkerTokens {
 public:
  // The bytes of the job store key every token is derived from (32 bytes).
  static constexpr size_t kKeyBytes = 32;

  WorkerTokens() = default;  // no key yet: Valid() is false, tokens are empty
  // An empty key, or one the HMAC cannot be keyed with, is no key.
  explicit WorkerTokens(const std::string& key);

  bool Valid() const { return keyed_ != nullptr; }
  std::string Session(const std::string& worker_id) const;
  std::string Lease(const std::string& job_id, int attempt, const std::string& worker_id) const;

  // Whether `given` equals `expected`, in time that does not depend on where they differ.
  static bool Matches(const std::string& expected, const std::string& given);

 private:
  std::string Mac(const std::string& message) const;

  std::shared_ptr<const EVP_MAC_CTX> keyed_;  // copied for each token, never changed
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_WORKER_TOKENS_H_
