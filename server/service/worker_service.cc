#include "server/service/worker_service.h"

#include <utility>

#include "base/grpc_status.h"

namespace tuneledger {

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext* context,
                                               const v1::RegisterWorkerRequest* request,
                                               v1::RegisterWorkerResponse* response) {
  absl::StatusOr<std::string> credential = authenticator_.AuthenticateWorker(*context);
  if (!credential.ok()) return ToGrpcStatus(credential.status());
  absl::StatusOr<v1::RegisterWorkerResponse> registered =
      scheduler_.RegisterWorker(request->info(), *credential);
  if (!registered.ok()) return ToGrpcStatus(registered.status());
  *response = *std::move(registered);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  absl::StatusOr<std::string> credential = authenticator_.AuthenticateWorker(*context);
  if (!credential.ok()) return ToGrpcStatus(credential.status());
  absl::StatusOr<v1::HeartbeatResponse> answer = scheduler_.Heartbeat(*request);
  if (!answer.ok()) return ToGrpcStatus(answer.status());
  *response = *std::move(answer);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::DeregisterWorker(grpc::ServerContext* context,
                                                 const v1::DeregisterWorkerRequest* request,
                                                 v1::DeregisterWorkerResponse* /*response*/) {
  absl::StatusOr<std::string> credential = authenticator_.AuthenticateWorker(*context);
  if (!credential.ok()) return ToGrpcStatus(credential.status());
  return ToGrpcStatus(scheduler_.DeregisterWorker(*request));
}

grpc::Status WorkerServiceImpl::LeaseJob(grpc::ServerContext* context,
                                         const v1::LeaseJobRequest* request,
                                         v1::LeaseJobResponse* response) {
  // Refused before it can wait: an unauthenticated poll never holds a thread.
  absl::StatusOr<std::string> credential = authenticator_.AuthenticateWorker(*context);
  if (!credential.ok()) return ToGrpcStatus(credential.status());
  absl::StatusOr<v1::LeaseJobResponse> lease =
      scheduler_.LeaseJob(*request, *credential, [context] { return context->IsCancelled(); });
  if (!lease.ok()) return ToGrpcStatus(lease.status());
  *response = *std::move(lease);
  return grpc::Status::OK;
}

grpc::ServerBidiReactor<v1::ProgressReport, v1::WorkerCommand>* WorkerServiceImpl::ReportProgress(
    grpc::CallbackServerContext* context) {
  return progress_streams_.Open(authenticator_.AuthenticateWorker(*context).status());
}

grpc::Status WorkerServiceImpl::FinishAttempt(grpc::ServerContext* context,
                                              const v1::FinishAttemptRequest* request,
                                              v1::FinishAttemptResponse* response) {
  absl::StatusOr<std::string> credential = authenticator_.AuthenticateWorker(*context);
  if (!credential.ok()) return ToGrpcStatus(credential.status());
  absl::StatusOr<v1::FinishAttemptResponse> finished = scheduler_.FinishAttempt(*request);
  if (!finished.ok()) return ToGrpcStatus(finished.status());
  *response = *std::move(finished);
  return grpc::Status::OK;
}

}  // namespace tuneledger
