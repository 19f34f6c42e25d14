// tuneledger-server's command line (README.md "Run", plus the operational flags).
//   --name VALUE and --name=VALUE both work; --spot and --help take no value.
// Durations take Abseil's forms ("15s", "500ms", "10m") or plain seconds ("15").
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_SERVER_SERVER_FLAGS_H_
#define TUNELEDGER_SERVER_SERVER_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tuneledger {

struct ServerFlags {
  std::string listen = "127.0.0.1:50051";
  // WorkerService's own listener: loopback by default, so only local workers reach it.
  std::string worker_listen = "127.0.0.1:0";
  std::string metrics_listen = "127.0.0.1:9464";
  std::string db = "tuneledger.db";
  int local_workers = 0;
  // Local worker i's data-parallel ranks listen from this port + i (--rendezvous-port-base).
  int local_rendezvous_port_base = 29500;
  std::string work_dir = "tuneledger-work";
  double price_per_gpu_hour = 0;
  double max_price_per_gpu_hour = 1000;  // RegisterWorker refuses a higher price
  bool spot = false;
  std::string worker_binary;  // empty: tuneledger-worker next to this executable
  std::string ready_file;
  std::string tokens_file;
  // TLS on both gRPC listeners (PEM files; cert and key together). With tls_client_ca the
  // worker listener also requires a client certificate that CA issued.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // /metrics wants HTTP Basic auth whose password is the first line of this file (main.cc).
  std::string metrics_token_file;
  // --data-root values ([TENANT=]DIR), in order; at least one is required (base/data_roots.h).
  std::vector<std::string> data_roots;
  absl::Duration heartbeat_timeout = absl::Seconds(15);
  absl::Duration report_interval = absl::Seconds(1);
  absl::Duration metrics_job_retention = absl::Minutes(10);
  int max_rpc_threads = 256;
  bool help = false;
};

// `args` excludes the program name. INVALID_ARGUMENT names the flag and the value.
absl::StatusOr<ServerFlags> ParseServerFlags(const std::vector<std::string>& args);

// The --help text.
std::string ServerUsage();

// HOST of a HOST:PORT flag value (an IPv6 literal keeps its brackets).
std::string HostOf(const std::string& host_port);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVER_FLAGS_H_
