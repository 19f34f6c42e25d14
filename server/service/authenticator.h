// Who is calling JobService: bearer tokens mapped to tenants (optional --tokens-file).
//
// Tokens file: one "TOKEN TENANT" pair per line; blank lines and lines starting with '#' are
// skipped. Calls carry metadata "authorization: Bearer TOKEN":
//   no tokens file        -> every caller is tenant "default"
//   missing/malformed     -> UNAUTHENTICATED
//   unknown token         -> PERMISSION_DENIED
// (A job of another tenant is PERMISSION_DENIED too: the scheduler checks ownership.)
// WorkerService is not authenticated: workers are internal agents that dial the server over
// the cluster network, and the tokens name tenants, not machines.
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
  // Everyone is tenant "default".
  static Authenticator AllowAll();
  // INVALID_ARGUMENT naming the file and line of a malformed entry; NOT_FOUND if unreadable.
  static absl::StatusOr<Authenticator> FromTokensFile(const std::string& path);
  static absl::StatusOr<Authenticator> FromTokensText(absl::string_view text,
                                                      absl::string_view origin);

  // The tenant for an "authorization" header value (nullopt: no header).
  absl::StatusOr<std::string> TenantFor(std::optional<absl::string_view> authorization) const;
  absl::StatusOr<std::string> Authenticate(const grpc::ServerContext& context) const;

 private:
  explicit Authenticator(std::optional<std::map<std::string, std::string>> tenants)
      : tenant_by_token_(std::move(tenants)) {}

  std::optional<std::map<std::string, std::string>> tenant_by_token_;  // nullopt: allow all
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_AUTHENTICATOR_H_
