#include "tests/worker/fake_worker_service.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tuneledger::testing {

using ::tuneledger::v1::FinishAttemptRequest;
using ::tuneledger::v1::FinishAttemptResponse;
using ::tuneledger::v1::HeartbeatRequest;
using ::tuneledger::v1::HeartbeatResponse;
using ::tuneledger::v1::Lease;
using ::tuneledger::v1::LeaseJobRequest;
using ::tuneledger::v1::LeaseJobResponse;
using ::tuneledger::v1::ProgressReport;
using ::tuneledger::v1::RegisterWorkerRequest;
using ::tuneledger::v1::RegisterWorkerResponse;
using ::tuneledger::v1::WorkerCommand;

void FakeWorkerService::set_intervals(double heartbeat_seconds, double report_seconds) {
  absl::MutexLock lock(&mu_);
  heartbeat_seconds_ = heartbeat_seconds;
  report_seconds_ = report_seconds;
}

void FakeWorkerService::QueueLease(Lease lease) {
  absl::MutexLock lock(&mu_);
  leases_.push_back(std::move(lease));
}

void FakeWorkerService::CancelOnStream(const std::string& job_id, const std::string& message) {
  absl::MutexLock lock(&mu_);
  stream_cancels_[job_id] = message;
}

void FakeWorkerService::CancelOnHeartbeat(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  heartbeat_cancels_.insert(job_id);
}

void FakeWorkerService::ForgetWorkers() {
  absl::MutexLock lock(&mu_);
  known_workers_.clear();
}

bool FakeWorkerService::WaitFor(const std::function<bool(const Log&)>& predicate,
                                absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  struct Args {
    const std::function<bool(const Log&)>* predicate;
    const Log* log;
  } args{&predicate, &log_};
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Args* a) { return (*a->predicate)(*a->log); }, &args),
                              timeout);
}

FakeWorkerService::Log FakeWorkerService::Snapshot() {
  absl::MutexLock lock(&mu_);
  return log_;
}

void FakeWorkerService::RecordAuthorization(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  log_.authorizations.push_back(
      it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size()));
}

grpc::Status FakeWorkerService::RegisterWorker(grpc::ServerContext* context,
                                               const RegisterWorkerRequest* request,
                                               RegisterWorkerResponse* response) {
  absl::MutexLock lock(&mu_);
  RecordAuthorization(*context);
  log_.registrations.push_back(*request);
  std::string id = absl::StrCat("w", next_worker_++);
  known_workers_.insert(id);
  response->set_worker_id(id);
  response->set_session_token("session-" + id);
  response->set_heartbeat_interval_seconds(heartbeat_seconds_);
  response->set_heartbeat_timeout_seconds(heartbeat_seconds_ * 10);
  response->set_report_interval_seconds(report_seconds_);
  return grpc::Status::OK;
}

grpc::Status FakeWorkerService::Heartbeat(grpc::ServerContext* context,
                                          const HeartbeatRequest* request,
                                          HeartbeatResponse* response) {
  absl::MutexLock lock(&mu_);
  RecordAuthorization(*context);
  log_.heartbeats.push_back(*request);
  response->set_known(known_workers_.count(request->worker_id()) > 0);
  for (const std::string& job_id : request->running_job_ids()) {
    if (heartbeat_cancels_.count(job_id) > 0) response->add_cancel_job_ids(job_id);
  }
  return grpc::Status::OK;
}

grpc::Status FakeWorkerService::LeaseJob(grpc::ServerContext* context,
                                         const LeaseJobRequest* request,
                                         LeaseJobResponse* response) {
  absl::MutexLock lock(&mu_);
  RecordAuthorization(*context);
  ++log_.lease_calls;
  log_.lease_requests.push_back(*request);
  if (known_workers_.count(request->worker_id()) == 0) {
    response->set_known(false);
    return grpc::Status::OK;
  }
  response->set_known(true);
  const absl::Time deadline = absl::Now() + absl::Seconds(std::min(request->wait_seconds(), 1.0));
  // Short waits (at most 1 s) so that a cancelled call or a shutdown is noticed soon.
  mu_.AwaitWithDeadline(absl::Condition(
                            +[](std::deque<Lease>* leases) { return !leases->empty(); }, &leases_),
                        deadline);
  if (!leases_.empty() && !context->IsCancelled()) {
    Lease lease = std::move(leases_.front());
    leases_.pop_front();
    if (lease.report_interval_seconds() == 0) lease.set_report_interval_seconds(report_seconds_);
    *response->mutable_lease() = std::move(lease);
  }
  return grpc::Status::OK;
}

grpc::Status FakeWorkerService::ReportProgress(
    grpc::ServerContext* context, grpc::ServerReaderWriter<WorkerCommand, ProgressReport>* stream) {
  {
    absl::MutexLock lock(&mu_);
    RecordAuthorization(*context);
  }
  ProgressReport report;
  while (stream->Read(&report)) {
    WorkerCommand command;
    bool send = false;
    {
      absl::MutexLock lock(&mu_);
      log_.reports.push_back(report);
      auto it = stream_cancels_.find(report.job_id());
      if (it != stream_cancels_.end()) {
        command.set_kind(WorkerCommand::CANCEL);
        command.set_job_id(report.job_id());
        command.set_reason(tuneledger::v1::Job::USER);
        command.set_message(it->second);
        stream_cancels_.erase(it);
        send = true;
      }
    }
    if (send && !stream->Write(command)) break;
  }
  return grpc::Status::OK;
}

grpc::Status FakeWorkerService::FinishAttempt(grpc::ServerContext* context,
                                              const FinishAttemptRequest* request,
                                              FinishAttemptResponse*) {
  absl::MutexLock lock(&mu_);
  RecordAuthorization(*context);
  log_.finishes.push_back(*request);
  return grpc::Status::OK;
}

FakeWorkerServer::FakeWorkerServer() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeWorkerServer::~FakeWorkerServer() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace tuneledger::testing
