// What a tuneledger-worker agent is told on its command line (see worker_main.cc), shared by
// the agent loop and the attempt runner.
// Thread safety: a plain value; copied into each component, never mutated after start.
#ifndef TUNELEDGER_WORKER_AGENT_AGENT_OPTIONS_H_
#define TUNELEDGER_WORKER_AGENT_AGENT_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/data_roots.h"

namespace tuneledger::worker {

struct AgentOptions {
  std::string server_address;  // HOST:PORT of tuneledger-server's gRPC listener
  std::string work_dir;        // absolute; see work_dir_layout.h
  double price_per_gpu_hour = 0;
  bool spot = false;
  double on_demand_price_per_gpu_hour = 0;  // declared beside a spot price; 0 = not declared
  // CUDA device indices this agent schedules (--gpus 0,1); empty = a CPU agent, which counts
  // as one "gpu" with accelerator "cpu".
  std::vector<int> gpu_indices;
  std::string trainer_path;  // absolute path of tuneledger-train
  std::string name;          // optional label "name" (local workers: local-0, local-1, ...)
  // Data parallel: the address other workers dial to reach a rank 0 this agent starts
  // (--rendezvous-host; empty: the hostname), and its first port (rank 0 of a job on GPU slot k
  // listens on rendezvous_port_base + k). See attempt_runner.h.
  std::string rendezvous_host;
  int rendezvous_port_base = 29500;
  // The folders a lease's model, train and valid paths must be in (--data-root): checked again
  // here, before the trainer starts, whatever the server said.
  DataRoots data_roots;

  // CANCEL: SIGTERM, then SIGKILL after this long (the trainer must be gone within 10 s).
  absl::Duration cancel_grace = absl::Seconds(5);
  // The agent's own SIGTERM (spot preemption notice): how long the trainer gets to write its
  // checkpoint before SIGKILL.
  absl::Duration preempt_grace = absl::Seconds(30);
  // LeaseJob long-poll length (the server caps it at 30 s).
  absl::Duration lease_wait = absl::Seconds(10);
  // Deadline of each unary RPC.
  absl::Duration rpc_timeout = absl::Seconds(10);
  // How long FinishAttempt is retried while the server is unreachable.
  absl::Duration finish_retry_window = absl::Seconds(60);

  int gpus() const { return gpu_indices.empty() ? 1 : static_cast<int>(gpu_indices.size()); }
};

}  // namespace tuneledger::worker

#endif  // TUNELEDGER_WORKER_AGENT_AGENT_OPTIONS_H_
