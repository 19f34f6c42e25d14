// LocalWorkers: `tuneledger-server --local-workers N` runs N tuneledger-worker agents as child
// processes, so that one command gives a complete system on one machine. A worker that dies is
// restarted (with backoff); Stop() sends SIGTERM to all, waits up to the grace period, then
// SIGKILLs what is left and reaps every child.
// Thread safety: Start/Stop from the owning thread only; the supervisor thread is internal and
// joined by Stop() (also called by the destructor).
#ifndef TUNELEDGER_SERVER_LOCAL_WORKERS_H_
#define TUNELEDGER_SERVER_LOCAL_WORKERS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tuneledger {

struct LocalWorkersOptions {
  int count = 0;
  std::string server_address;  // HOST:PORT the workers dial (the server's bound address)
  std::string work_dir;        // shared by all local workers (checkpoints are reachable by all)
  double price_per_gpu_hour = 0;
  bool spot = false;
  std::string worker_binary;  // path of tuneledger-worker; empty = next to this executable
};

class LocalWorkers {
 public:
  explicit LocalWorkers(LocalWorkersOptions options);
  ~LocalWorkers();
  LocalWorkers(const LocalWorkers&) = delete;
  LocalWorkers& operator=(const LocalWorkers&) = delete;

  absl::Status Start();
  void Stop(absl::Duration grace = absl::Seconds(20));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_LOCAL_WORKERS_H_
