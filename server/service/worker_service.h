// WorkerService handlers (proto/tuneledger/v1/worker.proto): authenticate the worker
// credential (Authenticator::AuthenticateWorker) before anything else, call the Scheduler, map
// the result with ToGrpcStatus(). A ReportProgress stream that presents a wrong lease token
// ends with PERMISSION_DENIED, and never receives a command for that attempt.
//
// ReportProgress is the worker's bidirectional stream: this thread reads reports and hands them
// to the scheduler; a second thread, owned by the call and joined before it returns, waits for
// commands (CANCEL) for the attempts the stream has reported and writes them as soon as they
// exist, not only when the next report arrives. Every Read()/Write() result is checked.
// Thread safety: the handlers run on gRPC's thread pool; the Scheduler is thread-safe.
#ifndef TUNELEDGER_SERVER_SERVICE_WORKER_SERVICE_H_
#define TUNELEDGER_SERVER_SERVICE_WORKER_SERVICE_H_

#include "server/core/scheduler.h"
#include "server/service/authenticator.h"
#include "tuneledger/v1/worker.grpc.pb.h"

namespace tuneledger {

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Scheduler& scheduler, const Authenticator& authenticator)
      : scheduler_(scheduler), authenticator_(authenticator) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status DeregisterWorker(grpc::ServerContext* context,
                                const v1::DeregisterWorkerRequest* request,
                                v1::DeregisterWorkerResponse* response) override;
  grpc::Status LeaseJob(grpc::ServerContext* context, const v1::LeaseJobRequest* request,
                        v1::LeaseJobResponse* response) override;
  grpc::Status ReportProgress(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::WorkerCommand, v1::ProgressReport>* stream) override;
  grpc::Status FinishAttempt(grpc::ServerContext* context, const v1::FinishAttemptRequest* request,
                             v1::FinishAttemptResponse* response) override;

 private:
  Scheduler& scheduler_;
  const Authenticator& authenticator_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_WORKER_SERVICE_H_
