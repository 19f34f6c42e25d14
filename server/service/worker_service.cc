#include "server/service/worker_service.h"

#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "base/grpc_status.h"
#include "base/log.h"

namespace tuneledger {
namespace {

// How long the command thread waits before re-checking that its stream is still open.
constexpr absl::Duration kCommandPoll = absl::Milliseconds(200);

// The attempts a ReportProgress stream has reported, shared by its reader and command threads.
class StreamAttempts {
 public:
  void Report(const std::string& job_id, int attempt) {
    absl::MutexLock lock(&mu_);
    current_ = {job_id, attempt};
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  bool closed() const {
    absl::MutexLock lock(&mu_);
    return closed_;
  }
  // The reported attempt whose command has not been sent yet, waiting up to `timeout` for one.
  std::optional<std::pair<std::string, int>> WaitPending(absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    auto pending = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || (current_.has_value() && delivered_.count(*current_) == 0);
    };
    mu_.AwaitWithTimeout(absl::Condition(&pending), timeout);
    if (closed_ || !current_.has_value() || delivered_.count(*current_) > 0) return std::nullopt;
    return current_;
  }
  void Delivered(const std::pair<std::string, int>& attempt) {
    absl::MutexLock lock(&mu_);
    delivered_.insert(attempt);
  }

 private:
  mutable absl::Mutex mu_;
  std::optional<std::pair<std::string, int>> current_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<std::string, int>> delivered_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

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

grpc::Status WorkerServiceImpl::ReportProgress(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::WorkerCommand, v1::ProgressReport>* stream) {
  absl::StatusOr<std::string> credential = authenticator_.AuthenticateWorker(*context);
  if (!credential.ok()) return ToGrpcStatus(credential.status());
  StreamAttempts attempts;
  // Commands go down as soon as they exist. Only this thread writes; the handler thread reads.
  std::thread commander([&] {
    while (!attempts.closed() && !context->IsCancelled() && !scheduler_.stopping()) {
      const std::optional<std::pair<std::string, int>> pending = attempts.WaitPending(kCommandPoll);
      if (!pending.has_value()) continue;  // nothing reported yet, or its command was sent
      std::optional<v1::WorkerCommand> command =
          scheduler_.NextCommand(pending->first, pending->second, kCommandPoll);
      if (!command.has_value()) continue;
      if (!stream->Write(*command)) {
        TL_LOG(WARNING) << "could not send " << v1::WorkerCommand::Kind_Name(command->kind())
                        << " for job " << pending->first << ": the stream is closed";
        return;
      }
      attempts.Delivered(*pending);
    }
  });

  v1::ProgressReport report;
  absl::Status refused;
  while (stream->Read(&report)) {
    const absl::Status status = scheduler_.ReportProgress(report);
    if (absl::IsPermissionDenied(status)) {
      // Not this caller's attempt: end the stream before it can wait for that attempt's CANCEL.
      refused = status;
      break;
    }
    attempts.Report(report.job_id(), report.attempt());
    if (absl::IsFailedPrecondition(status)) {
      // Cancelled or moved on: keep the stream so the CANCEL reaches the worker.
      TL_LOG(DEBUG) << "report ignored: " << status;
    } else if (!status.ok()) {
      TL_LOG(WARNING) << "progress report of job " << report.job_id() << ": " << status;
    }
  }
  attempts.Close();
  commander.join();
  return ToGrpcStatus(refused);
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
