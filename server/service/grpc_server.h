// The gRPC front of tuneledger-server: JobService and WorkerService on one port, plus the
// standard health service (grpc.health.v1, "" and both services SERVING) and server reflection.
// Synchronous API (the core blocks on SQLite): long polls and watch streams each hold a thread,
// so ResourceQuota::SetMaxThreads bounds the pool at a size where dozens of workers and watchers
// fit. Every RPC's latency goes to ServerMetrics through an interceptor.
// Thread safety: Start and Shutdown from the owning thread; handlers run on gRPC's pool.
#ifndef TUNELEDGER_SERVER_SERVICE_GRPC_SERVER_H_
#define TUNELEDGER_SERVER_SERVICE_GRPC_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/scheduler.h"
#include "server/metrics/server_metrics.h"
#include "server/service/authenticator.h"
#include "server/service/job_service.h"
#include "server/service/worker_service.h"

namespace tuneledger {

struct GrpcServerOptions {
  std::string listen_address = "127.0.0.1:50051";  // port 0 picks a free port
  int max_threads = 256;
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

  // The port actually bound (the one asked for, or the one picked for port 0).
  int port() const { return port_; }

  // Health NOT_SERVING, then stops accepting calls and cancels the ones still running after
  // `deadline`; returns when every handler has returned.
  void Shutdown(absl::Duration deadline);

 private:
  GrpcServer(Scheduler& scheduler, const Authenticator& authenticator)
      : job_service_(scheduler, authenticator), worker_service_(scheduler) {}

  JobServiceImpl job_service_;
  WorkerServiceImpl worker_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_GRPC_SERVER_H_
