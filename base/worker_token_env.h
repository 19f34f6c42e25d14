// The environment variable that carries a worker token from tuneledger-server to the local
// workers it starts (server/local_workers.cc sets it, worker/agent/worker_credential.cc reads
// and unsets it): written once here, so both sides agree.
#ifndef TUNELEDGER_BASE_WORKER_TOKEN_ENV_H_
#define TUNELEDGER_BASE_WORKER_TOKEN_ENV_H_

namespace tuneledger {

inline constexpr char kWorkerTokenEnv[] = "TUNELEDGER_WORKER_TOKEN";

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_WORKER_TOKEN_ENV_H_
