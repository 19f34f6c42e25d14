#include "worker/agent/worker_credential.h"

#include <grpcpp/support/client_interceptor.h>

#include <cstdlib>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/worker_token_env.h"

namespace tuneledger::worker {
namespace {

namespace experimental = grpc::experimental;

class BearerInterceptor : public experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string* header) : header_(header) {}

  void Intercept(experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;  // owned by the factory, which the channel keeps
};

class BearerInterceptorFactory : public experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(const std::string& token) : header_("Bearer " + token) {}

  experimental::Interceptor* CreateClientInterceptor(experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(&header_);
  }

 private:
  const std::string header_;
};

}  // namespace

absl::StatusOr<std::string> ReadWorkerToken(const std::string& token_file) {
  std::string token;
  std::string source;
  if (!token_file.empty()) {
    source = absl::StrCat("--token-file ", token_file);
    std::ifstream in(token_file);
    if (!in) return absl::InvalidArgumentError(absl::StrCat(source, ": cannot read it"));
    std::getline(in, token);
  } else if (const char* value = std::getenv(kWorkerTokenEnv); value != nullptr) {
    source = kWorkerTokenEnv;
    token = value;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("a worker token is required: --token-file FILE, or $", kWorkerTokenEnv,
                     " (a tokens-file line \"TOKEN NAME worker\" on the server)"));
  }
  unsetenv(kWorkerTokenEnv);  // the trainers this agent starts never see it
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty())
    return absl::InvalidArgumentError(absl::StrCat(source, ": the token is empty"));
  return token;
}

std::shared_ptr<grpc::Channel> CreateWorkerChannel(const std::string& target,
                                                   std::shared_ptr<grpc::ChannelCredentials> creds,
                                                   const grpc::ChannelArguments& args,
                                                   const std::string& token) {
  std::vector<std::unique_ptr<experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerInterceptorFactory>(token));
  return experimental::CreateCustomChannelWithInterceptors(target, std::move(creds), args,
                                                           std::move(interceptors));
}

}  // namespace tuneledger::worker
