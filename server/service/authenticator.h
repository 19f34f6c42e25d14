// Who is calling: bearer tokens mapped to tenants and to worker credentials (--tokens-file).
//
// Tokens file: one "TOKEN NAME [ROLE]" per line; blank lines and lines starting with '#' are
// skipped. ROLE is `tenant` (the default: NAME is the tenant) or `worker` (NAME names the
// credential, e.g. the machine pool it is given to). Calls carry metadata
// "authorization: Bearer TOKEN".
//
// JobService (Authenticate):
//   no tokens file, or a file with no tenant lines -> every caller is tenant "default"
//   missing/malformed     -> UNAUTHENTICATED
//   unknown token         -> PERMISSION_DENIED (a worker token too)
// (A job of another tenant is PERMISSION_DENIED too: the scheduler checks ownership.)
//
// WorkerService (AuthenticateWorker): always needs a worker token, tokens file or not: the
// file's `worker` lines, plus the one the server makes for its own local workers
// (WithWorkerToken). Missing/malformed -> UNAUTHENTICATED; any other token -> PERMISSION_DENIED.
//
// Thread safety: immutable after construction; safe from any thread.
#ifndef TUNELEDGER_SERVER_SERVICE_AUTHENTICATOR_H_
#define TUNELEDGER_SERVER_SERVICE_AUTHENTICATOR_H_

#include <grpcpp/server_context.h>

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tuneledger {

inline constexpr char kDefaultTenant[] = "default";

class Authenticator {
 public:
  // Everyone is tenant "default"; no worker token yet.
  static Authenticator AllowAll();
  // INVALID_ARGUMENT naming the file and line of a malformed entry; NOT_FOUND if unreadable.
  static absl::StatusOr<Authenticator> FromTokensFile(const std::string& path);
  static absl::StatusOr<Authenticator> FromTokensText(absl::string_view text,
                                                      absl::string_view origin);

  // This authenticator with one more worker token, named `name`.
  Authenticator WithWorkerToken(const std::string& token, const std::string& name) const;

  // The tenant for an "authorization" header value (nullopt: no header).
  absl::StatusOr<std::string> TenantFor(std::optional<absl::string_view> authorization) const;
  absl::StatusOr<std::string> Authenticate(const grpc::ServerContextBase& context) const;

  // The worker credential's name for an "authorization" header value (nullopt: no header).
  absl::StatusOr<std::string> WorkerFor(std::optional<absl::string_view> authorization) const;
  absl::StatusOr<std::string> AuthenticateWorker(const grpc::ServerContextBase& context) const;

 private:
  Authenticator(std::optional<std::map<std::string, std::string>> tenants,
                std::map<std::string, std::string> workers)
      : tenant_by_token_(std::move(tenants)), worker_by_token_(std::move(workers)) {}

  std::optional<std::map<std::string, std::string>> tenant_by_token_;  // nullopt: allow all
  std::map<std::string, std::string> worker_by_token_;                 // token -> credential
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_AUTHENTICATOR_H_
