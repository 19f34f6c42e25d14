// The readiness contract of tuneledger-server (used by every integration test and script):
// once both listeners are up, the file named by --ready-file is written atomically (a temporary
// file in the same folder, then rename) as
//   {"grpc":"127.0.0.1:PORT","metrics":"127.0.0.1:PORT","pid":N}
// Thread safety: free function without shared state.
#ifndef TUNELEDGER_SERVER_READY_FILE_H_
#define TUNELEDGER_SERVER_READY_FILE_H_

#include <string>

#include "absl/status/status.h"

namespace tuneledger {

absl::Status WriteReadyFile(const std::string& path, const std::string& grpc_address,
                            const std::string& metrics_address, int pid);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_READY_FILE_H_
