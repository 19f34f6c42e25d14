// JobService handlers (proto/tuneledger/v1/jobs.proto): authenticate, call the Scheduler, map
// the result with ToGrpcStatus(). No decisions here.
// Thread safety: the handlers run on gRPC's thread pool; the Scheduler is thread-safe.
#ifndef TUNELEDGER_SERVER_SERVICE_JOB_SERVICE_H_
#define TUNELEDGER_SERVER_SERVICE_JOB_SERVICE_H_

#include "server/core/scheduler.h"
#include "server/service/authenticator.h"
#include "tuneledger/v1/jobs.grpc.pb.h"

namespace tuneledger {

class JobServiceImpl final : public v1::JobService::Service {
 public:
  JobServiceImpl(Scheduler& scheduler, const Authenticator& authenticator)
      : scheduler_(scheduler), authenticator_(authenticator) {}

  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override;
  // What the spec would cost, validated as SubmitJob validates it; nothing is stored.
  grpc::Status EstimateJob(grpc::ServerContext* context, const v1::EstimateJobRequest* request,
                           v1::JobEstimate* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  // The current snapshot, then one message per event or progress update; ends after the job
  // reaches a final state (OK), when the client goes away (CANCELLED), when the watcher fell too
  // far behind (RESOURCE_EXHAUSTED) or when the server shuts down (UNAVAILABLE).
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::WatchJobResponse>* writer) override;
  grpc::Status ListJobEvents(grpc::ServerContext* context, const v1::ListJobEventsRequest* request,
                             v1::ListJobEventsResponse* response) override;
  grpc::Status GetCostReport(grpc::ServerContext* context, const v1::GetCostReportRequest* request,
                             v1::CostReport* response) override;
  grpc::Status GetProgressHistory(grpc::ServerContext* context,
                                  const v1::GetProgressHistoryRequest* request,
                                  v1::ProgressHistory* response) override;
  grpc::Status GetParetoFront(grpc::ServerContext* context,
                              const v1::GetParetoFrontRequest* request,
                              v1::ParetoFront* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;

 private:
  Scheduler& scheduler_;
  const Authenticator& authenticator_;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_JOB_SERVICE_H_
