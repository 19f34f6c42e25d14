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
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tuneledger {

struct LocalWorkersOptions {
  int count = 0;
  std::string server_address;  // HOST:PORT the workers dial (the server's bound address)
  std::string work_dir;        // shared by all local workers (checkpoints are reachable by all)
  double price_per_gpu_hour = 0;
  bool spot = false;
  std::string worker_binary;  // path of tuneledger-worker; empty = next to this executable
  std::vector<std::string> data_roots;  // the server's --data-root values, passed on as they are
  // Worker i: --rendezvous-host 127.0.0.1 --rendezvous-port-base rendezvous_port_base + i (one
  // "gpu" each), so that data-parallel jobs across local workers find each other.
  int rendezvous_port_base = 29500;
  // The worker credential the server made for them; passed in the environment (worker_main.cc),
  // never on a command line that `ps` shows.
  std::string worker_token;
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

// The Unix socket local workers dial when the worker listener speaks TLS (main.cc says why):
// a fresh folder only this user may enter ($TMPDIR or /tmp, mode 0700; a socket path must stay
// under 108 bytes, which a --work-dir path need not), removed with the object.
// Thread safety: a plain value after Create().
class LocalWorkerSocket {
 public:
  static absl::StatusOr<std::unique_ptr<LocalWorkerSocket>> Create();
  ~LocalWorkerSocket();
  LocalWorkerSocket(const LocalWorkerSocket&) = delete;
  LocalWorkerSocket& operator=(const LocalWorkerSocket&) = delete;

  // The gRPC address, "unix:<folder>/workers.sock".
  std::string address() const { return "unix:" + dir_ + "/workers.sock"; }

 private:
  explicit LocalWorkerSocket(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_LOCAL_WORKERS_H_
