// WorkerService handlers (proto/tuneledger/v1/worker.proto): authenticate the worker
// credential (Authenticator::AuthenticateWorker) before anything else, call the Scheduler, map
// the result with ToGrpcStatus(). A ReportProgress stream that presents a wrong lease token
// ends with PERMISSION_DENIED, and never receives a command for that attempt.
//
// ReportProgress, the stream every running attempt keeps open, is a callback reactor
// (progress_streams.h): an open stream holds no thread of the listener's pool.
// Thread safety: the handlers run on gRPC's thread pool; the Scheduler is thread-safe.
#ifndef TUNELEDGER_SERVER_SERVICE_WORKER_SERVICE_H_
#define TUNELEDGER_SERVER_SERVICE_WORKER_SERVICE_H_

#include "server/core/scheduler.h"
#include "server/service/authenticator.h"
#include "server/service/progress_streams.h"
#include "tuneledger/v1/worker.grpc.pb.h"

namespace tuneledger {

class WorkerServiceImpl final
    : public v1::WorkerService::WithCallbackMethod_ReportProgress<v1::WorkerService::Service> {
 public:
  WorkerServiceImpl(Scheduler& scheduler, const Authenticator& authenticator)
      : scheduler_(scheduler), authenticator_(authenticator), progress_streams_(scheduler) {}

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
  grpc::ServerBidiReactor<v1::ProgressReport, v1::WorkerCommand>* ReportProgress(
      grpc::CallbackServerContext* context) override;
  grpc::Status FinishAttempt(grpc::ServerContext* context, const v1::FinishAttemptRequest* request,
                             v1::FinishAttemptResponse* response) override;

 private:
  Scheduler& scheduler_;
  const Authenticator& authenticator_;
  ProgressStreams progress_streams_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_WORKER_SERVICE_H_
