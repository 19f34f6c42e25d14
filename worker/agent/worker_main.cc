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
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/base/log.h"
#include "worker/agent/agent_options.h"
#include "worker/agent/hardware_probe.h"
#include "worker/agent/work_dir_layout.h"
#include "worker/agent/worker_agent.h"

namespace tuneledger::worker {
namespace {

constexpr char kUsage[] = R"(tuneledger-worker: runs LoRA fine-tuning jobs from a tuneledger-server.

Usage:
  tuneledger-worker --server HOST:PORT --work-dir DIR --price-per-gpu-hour USD [--spot]
                    [--gpus LIST] [--trainer PATH] [--name NAME]
                    [--cancel-grace-seconds S] [--preempt-grace-seconds S]

The agent registers with the server (hostname, accelerator, memory, price, spot), heartbeats,
leases one job at a time, runs tuneledger-train on it as a child process and relays its
progress and accrued cost. SIGTERM or SIGINT is a preemption notice: the running trainer
checkpoints, the attempt is reported PREEMPTED (the job resumes on another worker) and the
agent exits.

Flags:
  --server HOST:PORT         the server's gRPC address (required)
  --work-dir DIR             attempts, checkpoints and adapters go under DIR/jobs/ (required;
                             every worker of one server must reach the same DIR)
  --price-per-gpu-hour USD   what one GPU-hour of this machine costs (required, >= 0)
  --spot                     this machine is a spot/preemptible instance
  --gpus LIST                CUDA device indices to use, e.g. 0,1 (the trainer sees only these);
                             without it the agent is a CPU agent (one "gpu", accelerator cpu)
  --trainer PATH             tuneledger-train to run (default: next to this executable)
  --name NAME                label "name" shown by `tunectl workers`
  --cancel-grace-seconds S   on CANCEL: SIGTERM, then SIGKILL after S seconds (default 5)
  --preempt-grace-seconds S  on SIGTERM: time the trainer gets to checkpoint (default 30)
  --help                     this text

Exit status: 0 after a graceful stop, 2 for a bad command line.
)";

struct ParsedFlags {
  AgentOptions options;
  bool help = false;
};

absl::StatusOr<double> ParseSeconds(absl::string_view flag, absl::string_view value) {
  double seconds = 0;
  if (!absl::SimpleAtod(value, &seconds) || !(seconds >= 0) || seconds > 3600) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": want seconds in [0, 3600], got \"", value, "\""));
  }
  return seconds;
}

std::string ExecutableDir() {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? "." : self.parent_path().string();
}

absl::StatusOr<ParsedFlags> ParseFlags(int argc, char** argv) {
  ParsedFlags parsed;
  AgentOptions& options = parsed.options;
  std::optional<std::string> price;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> absl::StatusOr<std::string> {
      if (inline_value.has_value()) return *inline_value;
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value"));
      return std::string(argv[++i]);
    };
    auto flag_only = [&]() -> absl::Status {
      if (inline_value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(arg, " takes no value"));
      }
      return absl::OkStatus();
    };
    absl::StatusOr<std::string> v;
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
    } else if (arg == "--spot") {
      if (absl::Status s = flag_only(); !s.ok()) return s;
      options.spot = true;
    } else if (arg == "--server" || arg == "--work-dir" || arg == "--price-per-gpu-hour" ||
               arg == "--gpus" || arg == "--trainer" || arg == "--name" ||
               arg == "--cancel-grace-seconds" || arg == "--preempt-grace-seconds") {
      if (!(v = value()).ok()) return v.status();
      if (arg == "--server") options.server_address = *v;
      if (arg == "--work-dir") options.work_dir = *v;
      if (arg == "--price-per-gpu-hour") price = *v;
      if (arg == "--trainer") options.trainer_path = *v;
      if (arg == "--name") options.name = *v;
      if (arg == "--gpus") {
        absl::StatusOr<std::vector<int>> gpus = ParseGpuList(*v);
        if (!gpus.ok()) return gpus.status();
        options.gpu_indices = *gpus;
      }
      if (arg == "--cancel-grace-seconds" || arg == "--preempt-grace-seconds") {
        absl::StatusOr<double> seconds = ParseSeconds(arg, *v);
        if (!seconds.ok()) return seconds.status();
        (arg == "--cancel-grace-seconds" ? options.cancel_grace : options.preempt_grace) =
            absl::Seconds(*seconds);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument \"", argv[i], "\""));
    }
  }
  if (parsed.help) return parsed;

  if (options.server_address.empty()) return absl::InvalidArgumentError("--server is required");
  if (options.work_dir.empty()) return absl::InvalidArgumentError("--work-dir is required");
  if (!price.has_value()) return absl::InvalidArgumentError("--price-per-gpu-hour is required");
  if (!absl::SimpleAtod(*price, &options.price_per_gpu_hour) ||
      !(options.price_per_gpu_hour >= 0) || options.price_per_gpu_hour > 1e6) {
    return absl::InvalidArgumentError(
        absl::StrCat("--price-per-gpu-hour: want USD >= 0, got \"", *price, "\""));
  }
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
    options.trainer_path = ExecutableDir() + "/tuneledger-train";
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
  WorkerAgent agent(flags->options,
                    grpc::CreateCustomChannel(flags->options.server_address,
                                              grpc::InsecureChannelCredentials(), channel_args));

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
