// A scripted, in-process WorkerService for testing the real tuneledger-worker binary without a
// real server: it hands out the leases a test queues, records every call (and its
// "authorization" metadata), and sends the commands a test asks for. Worker "wN" gets session
// token "session-wN"; it checks no token: tests read the log.
// Thread safety: all methods are safe from any thread (the gRPC handlers and the test).
#ifndef TUNELEDGER_TESTS_WORKER_FAKE_WORKER_SERVICE_H_
#define TUNELEDGER_TESTS_WORKER_FAKE_WORKER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tuneledger/v1/worker.grpc.pb.h"

namespace tuneledger::testing {

class FakeWorkerService final : public tuneledger::v1::WorkerService::Service {
 public:
  // What the fake has seen so far.
  struct Log {
    std::vector<tuneledger::v1::RegisterWorkerRequest> registrations;
    std::vector<tuneledger::v1::HeartbeatRequest> heartbeats;
    std::vector<tuneledger::v1::ProgressReport> reports;
    std::vector<tuneledger::v1::FinishAttemptRequest> finishes;
    std::vector<tuneledger::v1::LeaseJobRequest> lease_requests;
    int lease_calls = 0;
    // The "authorization" metadata of every call, in order ("" when a call had none).
    std::vector<std::string> authorizations;
  };

  FakeWorkerService() = default;

  // Settings answered by RegisterWorker / put on leases.
  void set_intervals(double heartbeat_seconds, double report_seconds);

  void QueueLease(tuneledger::v1::Lease lease);
  // Sends CANCEL for job_id on its ReportProgress stream (after the next report it reads).
  void CancelOnStream(const std::string& job_id, const std::string& message);
  // Lists job_id in every later HeartbeatResponse's cancel_job_ids.
  void CancelOnHeartbeat(const std::string& job_id);
  // Forgets every registered worker: later heartbeats and leases answer known=false.
  void ForgetWorkers();

  // Waits until predicate(log) holds or the timeout passes; returns whether it held. The
  // predicate runs under the fake's lock: keep it quick.
  bool WaitFor(const std::function<bool(const Log&)>& predicate, absl::Duration timeout);
  Log Snapshot();

  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const tuneledger::v1::RegisterWorkerRequest* request,
                              tuneledger::v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const tuneledger::v1::HeartbeatRequest* request,
                         tuneledger::v1::HeartbeatResponse* response) override;
  grpc::Status LeaseJob(grpc::ServerContext* context,
                        const tuneledger::v1::LeaseJobRequest* request,
                        tuneledger::v1::LeaseJobResponse* response) override;
  grpc::Status ReportProgress(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<tuneledger::v1::WorkerCommand, tuneledger::v1::ProgressReport>*
          stream) override;
  grpc::Status FinishAttempt(grpc::ServerContext* context,
                             const tuneledger::v1::FinishAttemptRequest* request,
                             tuneledger::v1::FinishAttemptResponse* response) override;

 private:
  void RecordAuthorization(const grpc::ServerContext& context) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;  // guards everything below
  Log log_ ABSL_GUARDED_BY(mu_);
  double heartbeat_seconds_ ABSL_GUARDED_BY(mu_) = 0.2;
  double report_seconds_ ABSL_GUARDED_BY(mu_) = 0.3;
  int next_worker_ ABSL_GUARDED_BY(mu_) = 1;
  std::set<std::string> known_workers_ ABSL_GUARDED_BY(mu_);
  std::deque<tuneledger::v1::Lease> leases_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> stream_cancels_ ABSL_GUARDED_BY(mu_);  // job -> message
  std::set<std::string> heartbeat_cancels_ ABSL_GUARDED_BY(mu_);
};

// The fake served on 127.0.0.1 on a free port.
class FakeWorkerServer {
 public:
  FakeWorkerServer();
  ~FakeWorkerServer();
  FakeWorkerService& service() { return service_; }
  const std::string& address() const { return address_; }

 private:
  FakeWorkerService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_WORKER_FAKE_WORKER_SERVICE_H_
