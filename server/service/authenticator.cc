#include "server/service/authenticator.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tuneledger {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

// The token of an "authorization" header value; UNAUTHENTICATED when there is none.
absl::StatusOr<std::string> BearerToken(std::optional<absl::string_view> authorization) {
  if (!authorization.has_value() || !absl::StartsWith(*authorization, kBearer)) {
    return absl::UnauthenticatedError(
        "missing credentials: send metadata \"authorization: Bearer <token>\"");
  }
  return std::string(absl::StripAsciiWhitespace(authorization->substr(kBearer.size())));
}

std::optional<absl::string_view> AuthorizationHeader(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

Authenticator Authenticator::AllowAll() { return Authenticator(std::nullopt, {}); }

absl::StatusOr<Authenticator> Authenticator::FromTokensFile(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("tokens file \"", path, "\" is not readable"));
  std::stringstream text;
  text << file.rdbuf();
  return FromTokensText(text.str(), path);
}

absl::StatusOr<Authenticator> Authenticator::FromTokensText(absl::string_view text,
                                                            absl::string_view origin) {
  std::map<std::string, std::string> tenants;
  std::map<std::string, std::string> workers;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() != 2 && fields.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", line_number, ": expected \"TOKEN NAME [tenant|worker]\", got ",
                       fields.size(), " fields"));
    }
    const absl::string_view role = fields.size() == 3 ? fields[2] : "tenant";
    if (role != "tenant" && role != "worker") {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ":", line_number, ": the role must be tenant or worker, got \"", role, "\""));
    }
    const std::string token(fields[0]);
    if (tenants.count(token) > 0 || workers.count(token) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", line_number, ": token listed twice"));
    }
    (role == "worker" ? workers : tenants).emplace(token, std::string(fields[1]));
  }
  // A file of worker lines only leaves JobService as open as no file at all.
  if (tenants.empty()) return Authenticator(std::nullopt, std::move(workers));
  return Authenticator(std::move(tenants), std::move(workers));
}

Authenticator Authenticator::WithWorkerToken(const std::string& token,
                                             const std::string& name) const {
  Authenticator copy = *this;
  copy.worker_by_token_[token] = name;
  return copy;
}

absl::StatusOr<std::string> Authenticator::TenantFor(
    std::optional<absl::string_view> authorization) const {
  if (!tenant_by_token_.has_value()) return std::string(kDefaultTenant);
  absl::StatusOr<std::string> token = BearerToken(authorization);
  if (!token.ok()) return token.status();
  auto it = tenant_by_token_->find(*token);
  if (it == tenant_by_token_->end()) return absl::PermissionDeniedError("unknown token");
  return it->second;
}

absl::StatusOr<std::string> Authenticator::Authenticate(
    const grpc::ServerContextBase& context) const {
  return TenantFor(AuthorizationHeader(context));
}

absl::StatusOr<std::string> Authenticator::WorkerFor(
    std::optional<absl::string_view> authorization) const {
  absl::StatusOr<std::string> token = BearerToken(authorization);
  if (!token.ok()) {
    return absl::UnauthenticatedError(
        "WorkerService needs a worker token: send metadata \"authorization: Bearer <token>\" "
        "with a token the server's --tokens-file lists as \"TOKEN NAME worker\"");
  }
  auto it = worker_by_token_.find(*token);
  if (it == worker_by_token_.end()) {
    return absl::PermissionDeniedError("not a worker token of this server");
  }
  return it->second;
}

absl::StatusOr<std::string> Authenticator::AuthenticateWorker(
    const grpc::ServerContextBase& context) const {
  return WorkerFor(AuthorizationHeader(context));
}

}  // namespace tuneledger
