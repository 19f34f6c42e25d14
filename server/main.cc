// tuneledger-server: composes the server in order (flags, store, metrics, core, gRPC, local
// workers, ready file), waits for SIGINT/SIGTERM, then takes it apart in reverse (local workers,
// core, gRPC Shutdown(deadline), metrics, store) and exits 0.
#include <netdb.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "base/data_roots.h"
#include "base/log.h"
#include "base/random_bytes.h"
#include "base/status_macros.h"
#include "base/tls_credentials.h"
#include "server/core/job_store.h"
#include "server/core/scheduler.h"
#include "server/core/worker_tokens.h"
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

// The /metrics token: the first line of --metrics-token-file, without surrounding blanks.
absl::StatusOr<std::string> ReadMetricsToken(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-token-file: cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string token;
  std::getline(in, token);
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-token-file: the first line of ", path, " is empty"));
  }
  return token;
}

// prometheus-cpp's Exposer makes its CivetWeb server privately and offers only Basic auth
// (RegisterAuth), so the token is the Basic password; the user name is not checked. Prometheus
// sends it with basic_auth.password_file (deploy/README.md "TLS"). Registered before the
// registry, so /metrics is never served without the check.
void RequireMetricsToken(prometheus::Exposer& exposer, const std::string& token) {
  exposer.RegisterAuth(
      [token](const std::string& /*user*/, const std::string& password) {
        return WorkerTokens::Matches(token, password);
      },
      "tuneledger /metrics");
}

// FAILED_PRECONDITION naming `flag` when another process listens on `address` (HOST:PORT):
// checked before the database is created, so a second server on a taken port leaves no trace.
// Port 0 (any free port) is always free.
absl::Status CheckAddressFree(const char* flag, const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::OkStatus();  // the flag parser refused it already
  const std::string port = address.substr(colon + 1);
  if (port == "0") return absl::OkStatus();
  std::string host = HostOf(address);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found) != 0) {
    return absl::OkStatus();  // gRPC reports an unresolvable host in its own words
  }
  absl::Status status = absl::OkStatus();
  for (addrinfo* candidate = found; candidate != nullptr; candidate = candidate->ai_next) {
    const int fd = socket(candidate->ai_family, candidate->ai_socktype, candidate->ai_protocol);
    if (fd < 0) continue;
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));  // as gRPC and CivetWeb do
    const bool in_use =
        bind(fd, candidate->ai_addr, candidate->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
    if (in_use) {
      status = absl::FailedPreconditionError(absl::StrCat(
          flag, " ", address, ": the address is in use (is another tuneledger-server running?)"));
      break;
    }
  }
  freeaddrinfo(found);
  return status;
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
  // First, so that a bad certificate or key stops the server before it touches anything.
  TL_ASSIGN_OR_RETURN(const TlsServerPem tls,
                      LoadTlsServerFiles(flags.tls_cert, flags.tls_key, flags.tls_client_ca));
  std::string metrics_token;
  if (!flags.metrics_token_file.empty()) {
    TL_ASSIGN_OR_RETURN(metrics_token, ReadMetricsToken(flags.metrics_token_file));
  }

  TL_RETURN_IF_ERROR(CheckAddressFree("--listen", flags.listen));
  TL_RETURN_IF_ERROR(CheckAddressFree("--worker-listen", flags.worker_listen));
  TL_RETURN_IF_ERROR(CheckAddressFree("--metrics-listen", flags.metrics_listen));

  TL_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, JobStore::Open(flags.db, clock));

  auto registry = std::make_shared<prometheus::Registry>();
  ServerMetricsOptions metrics_options;
  metrics_options.job_series_retention = flags.metrics_job_retention;
  ServerMetrics metrics(*registry, clock, metrics_options);
  TL_ASSIGN_OR_RETURN(std::unique_ptr<prometheus::Exposer> exposer,
                      StartExposer(flags.metrics_listen));
  if (!metrics_token.empty()) RequireMetricsToken(*exposer, metrics_token);
  exposer->RegisterCollectable(registry);
  const std::vector<int> metrics_ports = exposer->GetListeningPorts();
  if (metrics_ports.empty()) {
    return absl::UnavailableError(
        absl::StrCat("/metrics is not listening on ", flags.metrics_listen));
  }
  const std::string metrics_address =
      absl::StrCat(HostOf(flags.metrics_listen), ":", metrics_ports.front());

  std::string roots_error;
  std::optional<DataRoots> data_roots = DataRoots::Parse(flags.data_roots, &roots_error);
  if (!data_roots) return absl::InvalidArgumentError(absl::StrCat("--data-root: ", roots_error));

  SchedulerOptions scheduler_options;
  scheduler_options.data_roots = *data_roots;
  scheduler_options.max_price_per_gpu_hour = flags.max_price_per_gpu_hour;
  // Waiting long polls stay under the worker listener's pool, leaving threads for heartbeats.
  scheduler_options.max_waiting_lease_polls = std::max(1, flags.max_rpc_threads / 2);
  scheduler_options.max_waiting_lease_polls_per_credential =
      std::max(1, scheduler_options.max_waiting_lease_polls / 2);
  scheduler_options.heartbeat_timeout = flags.heartbeat_timeout;
  scheduler_options.heartbeat_interval = flags.heartbeat_timeout / 3;
  scheduler_options.report_interval = flags.report_interval;
  Scheduler scheduler(*store, metrics, clock, scheduler_options);
  TL_RETURN_IF_ERROR(scheduler.Start());

  TL_ASSIGN_OR_RETURN(const Authenticator file_authenticator, MakeAuthenticator(flags));
  // The local workers' credential: made fresh at every start, known only to this process and
  // its children.
  TL_ASSIGN_OR_RETURN(const std::string local_worker_token, RandomHexToken(32));
  const Authenticator authenticator =
      file_authenticator.WithWorkerToken(local_worker_token, "local-workers");
  GrpcServerOptions grpc_options;
  grpc_options.listen_address = flags.listen;
  grpc_options.worker_listen_address = flags.worker_listen;
  grpc_options.max_threads = flags.max_rpc_threads;
  grpc_options.tls = tls;
  // With TLS on, local workers dial a Unix socket in a private folder instead of the TCP worker
  // listener: a worker given only the server's certificate could not verify one a CA issued
  // (OpenSSL takes only self-signed certificates as trust anchors), the certificate need not
  // name the loopback address they dial, and with --tls-client-ca they would need a client
  // certificate of their own. The socket reaches only this user; the worker token made above
  // still guards every call.
  std::unique_ptr<LocalWorkerSocket> local_worker_socket;
  if (tls.enabled() && flags.local_workers > 0) {
    TL_ASSIGN_OR_RETURN(local_worker_socket, LocalWorkerSocket::Create());
    grpc_options.worker_unix_address = local_worker_socket->address();
  }
  absl::StatusOr<std::unique_ptr<GrpcServer>> grpc_server =
      GrpcServer::Start(grpc_options, scheduler, authenticator, metrics);
  if (!grpc_server.ok()) {
    scheduler.Stop();
    return grpc_server.status();
  }

  const std::string grpc_address = absl::StrCat(HostOf(flags.listen), ":", (*grpc_server)->port());
  const std::string worker_address =
      absl::StrCat(HostOf(flags.worker_listen), ":", (*grpc_server)->worker_port());

  std::unique_ptr<LocalWorkers> local_workers;
  absl::Status status;
  if (flags.local_workers > 0) {
    LocalWorkersOptions options;
    options.count = flags.local_workers;
    options.server_address =
        local_worker_socket != nullptr
            ? local_worker_socket->address()
            : DialableAddress(HostOf(flags.worker_listen), (*grpc_server)->worker_port());
    options.worker_token = local_worker_token;
    options.work_dir = flags.work_dir;
    options.price_per_gpu_hour = flags.price_per_gpu_hour;
    options.spot = flags.spot;
    options.worker_binary = flags.worker_binary;
    options.data_roots = flags.data_roots;
    options.rendezvous_port_base = flags.local_rendezvous_port_base;
    local_workers = std::make_unique<LocalWorkers>(options);
    status = local_workers->Start();
  }
  if (status.ok() && !flags.ready_file.empty()) {
    status = WriteReadyFile(flags.ready_file,
                            ReadyAddresses{grpc_address, worker_address, metrics_address},
                            static_cast<int>(getpid()));
  }
  if (status.ok()) {
    TL_LOG(INFO) << "tuneledger-server ready: gRPC on " << grpc_address << ", workers on "
                 << worker_address << (tls.enabled() ? " (TLS)" : "") << ", /metrics on "
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
