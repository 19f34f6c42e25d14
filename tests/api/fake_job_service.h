// FakeJobService: an in-process JobService on 127.0.0.1:0 for the client's unit tests. It
// records what the client sent (metadata, deadlines, page tokens) and plays scripted WatchJob
// streams, one script per call; EstimateJob, SubmitJob and GetCostReport answer what was set.
// Thread safety: all methods are safe to call from the test thread while gRPC threads serve.
#ifndef TUNELEDGER_TESTS_API_FAKE_JOB_SERVICE_H_
#define TUNELEDGER_TESTS_API_FAKE_JOB_SERVICE_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tuneledger/v1/jobs.grpc.pb.h"

namespace tuneledger::client::testing {

// One WatchJob call: the messages to send, then either the final status or (block) waiting
// until the client cancels.
struct WatchScript {
  std::vector<tuneledger::v1::WatchJobResponse> messages;
  grpc::Status status = grpc::Status::OK;
  bool block_until_cancelled = false;
};

class FakeJobService final : public tuneledger::v1::JobService::Service {
 public:
  // What the last unary call carried.
  struct CallRecord {
    std::optional<std::string> authorization;  // unset when the metadata was absent
    absl::Duration deadline_remaining;         // InfiniteDuration when none was set
  };

  // Jobs for ListJobs, served `page_size` per page with tokens "page-1", "page-2", ...
  void SetJobs(std::vector<tuneledger::v1::Job> jobs, int page_size);
  // Successive ListJobEvents answers; the last one repeats.
  void AddEventsAnswer(std::vector<tuneledger::v1::JobEvent> events);
  void AddWatchScript(WatchScript script);
  // The answers of EstimateJob, SubmitJob and GetCostReport.
  void SetEstimate(tuneledger::v1::JobEstimate estimate);
  void SetSubmitResponse(tuneledger::v1::SubmitJobResponse response);
  void SetCostReport(tuneledger::v1::CostReport report);

  CallRecord last_call() const;
  CallRecord last_watch_call() const;
  std::vector<std::string> page_tokens_seen() const;
  int watch_calls() const;
  // The spec of the last EstimateJob or SubmitJob call, and the names of the calls made to
  // these two ("EstimateJob", "SubmitJob"), in order.
  tuneledger::v1::JobSpec last_spec() const;
  std::vector<std::string> spec_calls() const;

  grpc::Status EstimateJob(grpc::ServerContext* context,
                           const tuneledger::v1::EstimateJobRequest* request,
                           tuneledger::v1::JobEstimate* response) override;
  grpc::Status SubmitJob(grpc::ServerContext* context,
                         const tuneledger::v1::SubmitJobRequest* request,
                         tuneledger::v1::SubmitJobResponse* response) override;
  grpc::Status GetCostReport(grpc::ServerContext* context,
                             const tuneledger::v1::GetCostReportRequest* request,
                             tuneledger::v1::CostReport* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const tuneledger::v1::GetJobRequest* request,
                      tuneledger::v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context,
                        const tuneledger::v1::ListJobsRequest* request,
                        tuneledger::v1::ListJobsResponse* response) override;
  grpc::Status ListJobEvents(grpc::ServerContext* context,
                             const tuneledger::v1::ListJobEventsRequest* request,
                             tuneledger::v1::ListJobEventsResponse* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context,
                        const tuneledger::v1::WatchJobRequest* request,
                        grpc::ServerWriter<tuneledger::v1::WatchJobResponse>* writer) override;

 private:
  CallRecord Record(grpc::ServerContext* context) const;

  mutable absl::Mutex mu_;  // guards everything below
  std::vector<tuneledger::v1::Job> jobs_ ABSL_GUARDED_BY(mu_);
  int page_size_ ABSL_GUARDED_BY(mu_) = 100;
  std::deque<std::vector<tuneledger::v1::JobEvent>> events_answers_ ABSL_GUARDED_BY(mu_);
  std::deque<WatchScript> watch_scripts_ ABSL_GUARDED_BY(mu_);
  CallRecord last_call_ ABSL_GUARDED_BY(mu_);
  CallRecord last_watch_call_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> page_tokens_seen_ ABSL_GUARDED_BY(mu_);
  int watch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  tuneledger::v1::JobEstimate estimate_ ABSL_GUARDED_BY(mu_);
  tuneledger::v1::SubmitJobResponse submit_response_ ABSL_GUARDED_BY(mu_);
  tuneledger::v1::CostReport cost_report_ ABSL_GUARDED_BY(mu_);
  tuneledger::v1::JobSpec last_spec_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> spec_calls_ ABSL_GUARDED_BY(mu_);
};

// The fake served on an ephemeral loopback port for the lifetime of this object.
class FakeServer {
 public:
  FakeServer();
  ~FakeServer();
  FakeJobService& service() { return service_; }
  std::string address() const { return address_; }

 private:
  FakeJobService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace tuneledger::client::testing

#endif  // TUNELEDGER_TESTS_API_FAKE_JOB_SERVICE_H_
