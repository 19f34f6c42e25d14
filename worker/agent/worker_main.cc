// tuneledger-worker: the worker agent. Parses flags, turns SIGTERM/SIGINT into a graceful
// preemption, and runs WorkerAgent until then.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/command_line.h"
#include "base/data_roots.h"
#include "base/executable_dir.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "base/tls_credentials.h"
#include "base/work_dir_layout.h"
#include "worker/agent/agent_options.h"
#include "worker/agent/hardware_probe.h"
#include "worker/agent/worker_agent.h"
#include "worker/agent/worker_credential.h"

namespace tuneledger::worker {
namespace {

constexpr char kUsage[] = R"(tuneledger-worker: runs LoRA fine-tuning jobs from a tuneledger-server.

Usage:
  tuneledger-worker --server HOST:PORT --work-dir DIR --price-per-gpu-hour USD
                    --data-root DIR [--data-root DIR ...] [--token-file FILE]
                    [--spot [--on-demand-price-per-gpu-hour USD]] [--gpus LIST]
                    [--trainer PATH] [--name NAME]
                    [--rendezvous-host HOST] [--rendezvous-port-base PORT]
                    [--cancel-grace-seconds S] [--preempt-grace-seconds S]
                    [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]

The agent registers with the server (hostname, accelerator, memory, price, spot), heartbeats,
leases one job at a time, runs tuneledger-train on it as a child process and relays its
progress and accrued cost. SIGTERM or SIGINT is a preemption notice: the running trainer
checkpoints, the attempt is reported PREEMPTED (the job resumes on another worker) and the
agent exits.

Flags:
  --server HOST:PORT         the server's worker listener, its --worker-listen (required)
  --token-file FILE          the worker token (a line "TOKEN NAME worker" of the server's
                             --tokens-file), first line of FILE; default: the environment
                             variable TUNELEDGER_WORKER_TOKEN (the server sets it for its
                             local workers). Sent on every call; required
  --work-dir DIR             attempts, checkpoints and adapters go under DIR/jobs/ (required;
                             every worker of one server must reach the same DIR)
  --price-per-gpu-hour USD   what one GPU-hour of this machine costs (required, >= 0)
  --data-root [TENANT=]DIR   a folder whose files jobs may name (required; repeat it). Before
                             the trainer starts, the lease's model, train and valid paths must
                             resolve, links followed, inside one of them (any tenant's), or
                             the attempt fails with PERMISSION_DENIED naming the field
  --tls-ca FILE              dial the server over TLS, trusting the CA certificates in FILE
                             (PEM): for a server started with --tls-cert
  --tls-cert FILE            this worker's client certificate (PEM), for a server started
                             with --tls-client-ca; needs --tls-key and --tls-ca
  --tls-key FILE             the private key of --tls-cert (PEM, unencrypted)
  --spot                     this machine is a spot/preemptible instance
  --on-demand-price-per-gpu-hour USD
                             what one GPU-hour of this machine costs on demand (>= 0): cost
                             reports then state the saving against it; 0 = not declared
  --gpus LIST                CUDA device indices to use, e.g. 0,1 (the trainer sees only these);
                             without it the agent is a CPU agent (one "gpu", accelerator cpu)
  --trainer PATH             tuneledger-train to run (default: next to this executable)
  --rendezvous-host HOST     data-parallel jobs: the address other workers dial to reach a
                             rank 0 this agent starts (default: this machine's hostname)
  --rendezvous-port-base PORT
                             rank 0 of a job on this agent's k-th GPU listens on PORT + k
                             (default 29500); the ranks of a gang also connect to each other
                             on ephemeral ports
  --name NAME                label "name" shown by `tunectl workers`
  --cancel-grace-seconds S   on CANCEL: SIGTERM, then SIGKILL after S seconds (default 5)
  --preempt-grace-seconds S  on SIGTERM: time the trainer gets to checkpoint (default 30)
  --help                     this text

Exit status: 0 after a graceful stop, 2 for a bad command line.
)";

struct ParsedFlags {
  AgentOptions options;
  std::string token;  // the worker credential (worker_credential.h)
  TlsClientPem tls;   // not enabled(): plaintext
  bool help = false;
};

absl::StatusOr<ParsedFlags> ParseFlags(int argc, char** argv) {
  ParsedFlags parsed;
  AgentOptions& options = parsed.options;
  std::optional<std::string> price;
  std::vector<std::string> data_roots;
  std::string token_file;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  CommandLineHandlers handlers;
  handlers.kind = [](std::string_view name) -> std::optional<FlagKind> {
    if (name == "help" || name == "spot") return FlagKind::kSwitch;
    for (const char* value_flag :
         {"server", "work-dir", "price-per-gpu-hour", "on-demand-price-per-gpu-hour", "gpus",
          "trainer", "name", "cancel-grace-seconds", "preempt-grace-seconds", "data-root",
          "token-file", "tls-ca", "tls-cert", "tls-key", "rendezvous-host",
          "rendezvous-port-base"}) {
      if (name == value_flag) return FlagKind::kValue;
    }
    return std::nullopt;
  };
  handlers.apply = [&](std::string_view name, const std::string& value) -> std::string {
    if (name == "help") parsed.help = value == "true";
    if (name == "spot") options.spot = value == "true";
    if (name == "server") options.server_address = value;
    if (name == "work-dir") options.work_dir = value;
    if (name == "price-per-gpu-hour") price = value;
    if (name == "on-demand-price-per-gpu-hour") {
      const std::optional<double> usd = ParseDoubleFlag(value, 0, 1e6);
      if (!usd) return "want USD in [0, 1e6], got '" + value + "'";
      options.on_demand_price_per_gpu_hour = *usd;
    }
    if (name == "trainer") options.trainer_path = value;
    if (name == "name") options.name = value;
    if (name == "rendezvous-host") {
      if (value.empty() || value.find_first_of(" /:[]") != std::string::npos) {
        return "want a hostname or IPv4 address, got '" + value + "'";
      }
      options.rendezvous_host = value;
    }
    if (name == "rendezvous-port-base") {
      const std::optional<int64_t> port = ParseIntFlag(value, 1, 65535 - 64);
      if (!port) return "want a port in [1, 65471], got '" + value + "'";
      options.rendezvous_port_base = static_cast<int>(*port);
    }
    if (name == "data-root") data_roots.push_back(value);
    if (name == "token-file") token_file = value;
    if (name == "tls-ca") tls_ca = value;
    if (name == "tls-cert") tls_cert = value;
    if (name == "tls-key") tls_key = value;
    if (name == "gpus") {
      absl::StatusOr<std::vector<int>> gpus = ParseGpuList(value);
      if (!gpus.ok()) return std::string(gpus.status().message());
      options.gpu_indices = *gpus;
    }
    if (name == "cancel-grace-seconds" || name == "preempt-grace-seconds") {
      const std::optional<double> seconds = ParseDoubleFlag(value, 0, 3600);
      if (!seconds) return "want seconds in [0, 3600], got '" + value + "'";
      (name == "cancel-grace-seconds" ? options.cancel_grace : options.preempt_grace) =
          absl::Seconds(*seconds);
    }
    return "";
  };
  if (std::string problem = ParseCommandLine(CommandLineArguments(argc, argv), handlers);
      !problem.empty()) {
    return absl::InvalidArgumentError(problem);
  }
  if (parsed.help) return parsed;

  if (options.server_address.empty()) return absl::InvalidArgumentError("--server is required");
  if (options.work_dir.empty()) return absl::InvalidArgumentError("--work-dir is required");
  if (!price.has_value()) return absl::InvalidArgumentError("--price-per-gpu-hour is required");
  const std::optional<double> price_usd = ParseDoubleFlag(*price, 0, 1e6);
  if (!price_usd) {
    return absl::InvalidArgumentError(
        absl::StrCat("--price-per-gpu-hour: want USD in [0, 1e6], got '", *price, "'"));
  }
  options.price_per_gpu_hour = *price_usd;
  if (data_roots.empty()) {
    return absl::InvalidArgumentError(
        "--data-root is required: the folders whose models and data jobs may name");
  }
  std::string roots_error;
  std::optional<DataRoots> roots = DataRoots::Parse(data_roots, &roots_error);
  if (!roots) return absl::InvalidArgumentError(absl::StrCat("--data-root: ", roots_error));
  options.data_roots = *std::move(roots);
  TL_ASSIGN_OR_RETURN(parsed.token, ReadWorkerToken(token_file));
  TL_ASSIGN_OR_RETURN(parsed.tls, LoadTlsClientFiles(tls_ca, tls_cert, tls_key));
  if (!options.name.empty() && !layout::IsSafePathComponent(options.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--name: want letters, digits, '.', '_' or '-', got \"", options.name, "\""));
  }

  std::error_code error;
  std::filesystem::create_directories(options.work_dir, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("--work-dir: cannot create ", options.work_dir, ": ", error.message()));
  }
  options.work_dir = std::filesystem::absolute(options.work_dir).lexically_normal().string();
  if (options.trainer_path.empty()) {
    options.trainer_path = (ExecutableDir().value_or(".") / "tuneledger-train").string();
  }
  options.trainer_path = std::filesystem::absolute(options.trainer_path).string();
  if (access(options.trainer_path.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--trainer: ", options.trainer_path, " is not an executable file"));
  }
  return parsed;
}

int Main(int argc, char** argv) {
  absl::StatusOr<ParsedFlags> flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "tuneledger-worker: " << flags.status().message() << "\n"
              << "Run tuneledger-worker --help for usage.\n";
    return 2;
  }
  if (flags->help) {
    std::cout << kUsage;
    return 0;
  }

  // Block the stop signals in every thread (gRPC's included, so block before the channel
  // exists); one thread takes them with sigwait and turns them into Shutdown().
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);  // sent by main itself to end the signal thread
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  grpc::ChannelArguments channel_args;
  // Reconnect quickly after a server restart (the default backoff grows to 2 minutes).
  channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  WorkerAgent agent(flags->options, CreateWorkerChannel(flags->options.server_address,
                                                        MakeChannelCredentials(flags->tls),
                                                        channel_args, flags->token));

  std::thread signal_thread([&agent, &stop_signals] {
    while (true) {
      int sig = 0;
      if (sigwait(&stop_signals, &sig) != 0) continue;
      if (sig == SIGUSR1) return;
      TL_LOG(INFO) << "received " << strsignal(sig);
      agent.Shutdown();
    }
  });

  absl::Status status = agent.Run();
  pthread_kill(signal_thread.native_handle(), SIGUSR1);
  signal_thread.join();
  if (!status.ok()) {
    TL_LOG(ERROR) << status;
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace tuneledger::worker

int main(int argc, char** argv) { return tuneledger::worker::Main(argc, argv); }
