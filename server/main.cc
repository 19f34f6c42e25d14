// tuneledger-server: composes the server in order (flags, store, metrics, core, gRPC, local
// workers, ready file), waits for SIGINT/SIGTERM, then takes it apart in reverse (local workers,
// core, gRPC Shutdown(deadline), metrics, store) and exits 0.
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/base/clock.h"
#include "server/base/log.h"
#include "server/base/status_macros.h"
#include "server/core/job_store.h"
#include "server/core/scheduler.h"
#include "server/local_workers.h"
#include "server/metrics/server_metrics.h"
#include "server/ready_file.h"
#include "server/server_flags.h"
#include "server/service/authenticator.h"
#include "server/service/grpc_server.h"

namespace tuneledger {
namespace {

constexpr absl::Duration kLocalWorkersGrace = absl::Seconds(20);
constexpr absl::Duration kRpcShutdownDeadline = absl::Seconds(5);

// Workers dial a concrete address: a wildcard listener is reached on loopback.
std::string DialableAddress(const std::string& host, int port) {
  const bool wildcard = host == "0.0.0.0" || host == "[::]" || host == "::" || host.empty();
  return absl::StrCat(wildcard ? "127.0.0.1" : host, ":", port);
}

absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartExposer(const std::string& address) {
  try {
    return std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& error) {  // civetweb reports a failed bind by throwing
    return absl::UnavailableError(
        absl::StrCat("cannot serve /metrics on ", address, ": ", error.what()));
  }
}

absl::StatusOr<Authenticator> MakeAuthenticator(const ServerFlags& flags) {
  if (flags.tokens_file.empty()) return Authenticator::AllowAll();
  return Authenticator::FromTokensFile(flags.tokens_file);
}

int WaitForSignal(const sigset_t& signals) {
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }
  return signal_number;
}

absl::Status Run(const ServerFlags& flags, const sigset_t& signals) {
  RealClock clock;

  TL_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, JobStore::Open(flags.db, clock));

  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetricsOptions metrics_options;
  metrics_options.job_series_retention = flags.metrics_job_retention;
  ServerMetrics metrics(*registry, clock, metrics_options);
  TL_ASSIGN_OR_RETURN(std::unique_ptr<prometheus::Exposer> exposer,
                      StartExposer(flags.metrics_listen));
  exposer->RegisterCollectable(registry);
  const std::vector<int> metrics_ports = exposer->GetListeningPorts();
  if (metrics_ports.empty()) {
    return absl::UnavailableError(
        absl::StrCat("/metrics is not listening on ", flags.metrics_listen));
  }
  const std::string metrics_address =
      absl::StrCat(HostOf(flags.metrics_listen), ":", metrics_ports.front());

  SchedulerOptions scheduler_options;
  scheduler_options.heartbeat_timeout = flags.heartbeat_timeout;
  scheduler_options.heartbeat_interval = flags.heartbeat_timeout / 3;
  scheduler_options.report_interval = flags.report_interval;
  Scheduler scheduler(*store, metrics, clock, scheduler_options);
  TL_RETURN_IF_ERROR(scheduler.Start());

  TL_ASSIGN_OR_RETURN(const Authenticator authenticator, MakeAuthenticator(flags));
  GrpcServerOptions grpc_options;
  grpc_options.listen_address = flags.listen;
  grpc_options.max_threads = flags.max_rpc_threads;
  absl::StatusOr<std::unique_ptr<GrpcServer>> grpc_server =
      GrpcServer::Start(grpc_options, scheduler, authenticator, metrics);
  if (!grpc_server.ok()) {
    scheduler.Stop();
    return grpc_server.status();
  }

  const std::string grpc_address = absl::StrCat(HostOf(flags.listen), ":", (*grpc_server)->port());

  std::unique_ptr<LocalWorkers> local_workers;
  absl::Status status;
  if (flags.local_workers > 0) {
    LocalWorkersOptions options;
    options.count = flags.local_workers;
    options.server_address = DialableAddress(HostOf(flags.listen), (*grpc_server)->port());
    options.work_dir = flags.work_dir;
    options.price_per_gpu_hour = flags.price_per_gpu_hour;
    options.spot = flags.spot;
    options.worker_binary = flags.worker_binary;
    local_workers = std::make_unique<LocalWorkers>(options);
    status = local_workers->Start();
  }
  if (status.ok() && !flags.ready_file.empty()) {
    status =
        WriteReadyFile(flags.ready_file, grpc_address, metrics_address, static_cast<int>(getpid()));
  }
  if (status.ok()) {
    TL_LOG(INFO) << "tuneledger-server ready: gRPC on " << grpc_address << ", /metrics on "
                 << metrics_address << ", db " << flags.db
                 << (flags.local_workers > 0
                         ? absl::StrCat(", ", flags.local_workers, " local workers")
                         : "");
    const int signal_number = WaitForSignal(signals);
    TL_LOG(INFO) << "received " << strsignal(signal_number) << ": shutting down";
  }

  // Local workers go first, while the server still listens: their attempts end PREEMPTED with
  // a fresh checkpoint instead of being found LOST after the next start.
  if (local_workers != nullptr) local_workers->Stop(kLocalWorkersGrace);
  scheduler.Stop();  // wakes long polls, command waits and watch streams; joins the ticker
  (*grpc_server)->Shutdown(kRpcShutdownDeadline);
  exposer.reset();
  store.reset();  // closes the database
  if (status.ok()) TL_LOG(INFO) << "tuneledger-server stopped cleanly";
  return status;
}

}  // namespace
}  // namespace tuneledger

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread exists: every thread inherits the mask and the
  // main thread takes them with sigwait(). Children get a clean mask from ChildProcess.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that goes away is a failed write, not a dead server

  const std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<tuneledger::ServerFlags> flags = tuneledger::ParseServerFlags(args);
  if (!flags.ok()) {
    std::fprintf(stderr, "tuneledger-server: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  if (flags->help) {
    std::fputs(tuneledger::ServerUsage().c_str(), stdout);
    return 0;
  }
  const absl::Status status = tuneledger::Run(*flags, signals);
  if (!status.ok()) {
    TL_LOG(ERROR) << "tuneledger-server: " << status;
    return 1;
  }
  return 0;
}
