// The readiness contract of tuneledger-server (used by every integration test and script):
// once every listener is up, the file named by --ready-file is written atomically (a temporary
// file in the same folder, then rename) as
//   {"grpc":"127.0.0.1:PORT","worker":"127.0.0.1:PORT","metrics":"127.0.0.1:PORT","pid":N}
// (grpc: JobService, for tunectl; worker: WorkerService, for workers).
// Thread safety: free function without shared state.
#ifndef TUNELEDGER_SERVER_READY_FILE_H_
#define TUNELEDGER_SERVER_READY_FILE_H_

#include <string>

#include "absl/status/status.h"

namespace tuneledger {

struct ReadyAddresses {
  std::string grpc;
  std::string worker;
  std::string metrics;
};

absl::Status WriteReadyFile(const std::string& path, const ReadyAddresses& addresses, int pid);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_READY_FILE_H_
