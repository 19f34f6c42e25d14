// The gRPC front of tuneledger-server: two listeners, each its own grpc::Server with its own
// thread pool, so the public one can be exposed alone and no worker traffic can starve tenants:
//   public (--listen)         JobService, health (grpc.health.v1), server reflection
//   worker (--worker-listen)  WorkerService (worker credentials only: worker_service.h), health
// Synchronous API (the core blocks on SQLite): long polls and watch streams each hold a thread,
// so ResourceQuota::SetMaxThreads bounds each pool at a size where dozens of workers and
// watchers fit (the scheduler caps waiting long polls below it: scheduler.h). The one
// exception is WorkerService.ReportProgress, open for every running attempt: a callback
// reactor that holds no pool thread (progress_streams.h), so a thousand running attempts do
// not exhaust the pool that registrations, leases and heartbeats need. Every RPC's latency
// goes to ServerMetrics through an interceptor.
// TLS (GrpcServerOptions::tls) covers both listeners; with a client CA the worker listener also
// requires client certificates. The worker listener can have a second, plaintext port on a Unix
// socket for the server's own local workers (main.cc says why).
// Thread safety: Start and Shutdown from the owning thread; handlers run on gRPC's pool.
#ifndef TUNELEDGER_SERVER_SERVICE_GRPC_SERVER_H_
#define TUNELEDGER_SERVER_SERVICE_GRPC_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/tls_credentials.h"
#include "server/core/scheduler.h"
#include "server/metrics/server_metrics.h"
#include "server/service/authenticator.h"
#include "server/service/job_service.h"
#include "server/service/worker_service.h"

namespace tuneledger {

struct GrpcServerOptions {
  std::string listen_address = "127.0.0.1:50051";     // port 0 picks a free port
  std::string worker_listen_address = "127.0.0.1:0";  // port 0 picks a free port
  int max_threads = 256;                              // per listener
  // Certificate and key of both listeners; client_ca: the worker listener requires client
  // certificates it issued. Not enabled(): plaintext.
  TlsServerPem tls;
  // "unix:PATH": WorkerService also listens there, without TLS (file permissions guard it; the
  // worker token is still required). Empty: no such port.
  std::string worker_unix_address;
};

class GrpcServer {
 public:
  // Binds and starts serving. UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                           Scheduler& scheduler,
                                                           const Authenticator& authenticator,
                                                           ServerMetrics& metrics);
  ~GrpcServer();  // Shutdown(0) if still serving
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // The ports actually bound (the ones asked for, or the ones picked for port 0).
  int port() const { return port_; }
  int worker_port() const { return worker_port_; }

  // Health NOT_SERVING, then stops accepting calls and cancels the ones still running after
  // `deadline`; returns when every handler has returned.
  void Shutdown(absl::Duration deadline);

 private:
  GrpcServer(Scheduler& scheduler, const Authenticator& authenticator)
      : job_service_(scheduler, authenticator), worker_service_(scheduler, authenticator) {}

  JobServiceImpl job_service_;
  WorkerServiceImpl worker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> worker_server_;
  int port_ = 0;
  int worker_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_GRPC_SERVER_H_
