#include "server/service/authenticator.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tuneledger {

Authenticator Authenticator::AllowAll() { return Authenticator(std::nullopt); }

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
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ":", line_number, ": expected \"TOKEN TENANT\", got ", fields.size(), " fields"));
    }
    if (!tenants.emplace(std::string(fields[0]), std::string(fields[1])).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", line_number, ": token listed twice"));
    }
  }
  return Authenticator(std::move(tenants));
}

absl::StatusOr<std::string> Authenticator::TenantFor(
    std::optional<absl::string_view> authorization) const {
  if (!tenant_by_token_.has_value()) return std::string(kDefaultTenant);
  constexpr absl::string_view kBearer = "Bearer ";
  if (!authorization.has_value() || !absl::StartsWith(*authorization, kBearer)) {
    return absl::UnauthenticatedError(
        "missing credentials: send metadata \"authorization: Bearer <token>\"");
  }
  const std::string token(absl::StripAsciiWhitespace(authorization->substr(kBearer.size())));
  auto it = tenant_by_token_->find(token);
  if (it == tenant_by_token_->end()) return absl::PermissionDeniedError("unknown token");
  return it->second;
}

absl::StatusOr<std::string> Authenticator::Authenticate(const grpc::ServerContext& context) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return TenantFor(std::nullopt);
  return TenantFor(absl::string_view(it->second.data(), it->second.size()));
}

}  // namespace tuneledger
