// The worker credential on every WorkerService call: metadata "authorization: Bearer TOKEN",
// added by a client interceptor on the agent's channel, so no call can go out without it.
// The token comes from --token-file or the environment variable TUNELEDGER_WORKER_TOKEN (which
// the server sets for its local workers); the agent removes the variable from its environment
// so that the trainers it starts never see it.
// Thread safety: the channel is safe to share; ReadWorkerToken is for main() only.
#ifndef TUNELEDGER_WORKER_AGENT_WORKER_CREDENTIAL_H_
#define TUNELEDGER_WORKER_AGENT_WORKER_CREDENTIAL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tuneledger::worker {

// The token: the first line of `token_file` when given, else $TUNELEDGER_WORKER_TOKEN (then
// unset). INVALID_ARGUMENT naming the source when there is none, or it is empty.
absl::StatusOr<std::string> ReadWorkerToken(const std::string& token_file);

// A channel to `target` whose every call carries the token.
std::shared_ptr<grpc::Channel> CreateWorkerChannel(const std::string& target,
                                                   std::shared_ptr<grpc::ChannelCredentials> creds,
                                                   const grpc::ChannelArguments& args,
                                                   const std::string& token);

}  // namespace tuneledger::worker

#endif  // TUNELEDGER_WORKER_AGENT_WORKER_CREDENTIAL_H_
