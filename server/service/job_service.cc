#include "server/service/job_service.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/grpc_status.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "server/core/job_states.h"

namespace tuneledger {
namespace {

// How long a watch stream sleeps between checks that its client is still there.
constexpr absl::Duration kWatchPoll = absl::Milliseconds(500);

// Runs `call(tenant)` for an authenticated caller and maps its status.
template <typename Call>
grpc::Status Authenticated(const Authenticator& authenticator, const grpc::ServerContext& context,
                           Call call) {
  absl::StatusOr<std::string> tenant = authenticator.Authenticate(context);
  if (!tenant.ok()) return ToGrpcStatus(tenant.status());
  return ToGrpcStatus(call(*tenant));
}

}  // namespace

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context,
                                       const v1::SubmitJobRequest* request,
                                       v1::SubmitJobResponse* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    TL_ASSIGN_OR_RETURN(EnqueueResult result, scheduler_.SubmitJob(tenant, request->spec(),
                                                                   response->mutable_estimate()));
    *response->mutable_job() = std::move(result.update.job);
    response->set_deduplicated(result.deduplicated);
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::EstimateJob(grpc::ServerContext* context,
                                         const v1::EstimateJobRequest* request,
                                         v1::JobEstimate* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    TL_ASSIGN_OR_RETURN(*response, scheduler_.EstimateJob(tenant, request->spec()));
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                                    v1::Job* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    TL_ASSIGN_OR_RETURN(*response, scheduler_.GetJob(tenant, request->id()));
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context,
                                      const v1::ListJobsRequest* request,
                                      v1::ListJobsResponse* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    std::vector<v1::Job::State> states;
    for (const int state : request->states()) states.push_back(static_cast<v1::Job::State>(state));
    TL_ASSIGN_OR_RETURN(JobPage page, scheduler_.ListJobs(tenant, states, request->page_size(),
                                                          request->page_token()));
    for (v1::Job& job : page.jobs) *response->add_jobs() = std::move(job);
    response->set_next_page_token(page.next_page_token);
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context,
                                       const v1::CancelJobRequest* request, v1::Job* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    TL_ASSIGN_OR_RETURN(*response, scheduler_.CancelJob(tenant, request->id(), request->message()));
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context,
                                      const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::WatchJobResponse>* writer) {
  absl::StatusOr<std::string> tenant = authenticator_.Authenticate(*context);
  if (!tenant.ok()) return ToGrpcStatus(tenant.status());
  absl::StatusOr<Scheduler::Watch> watch = scheduler_.WatchJob(*tenant, request->id());
  if (!watch.ok()) return ToGrpcStatus(watch.status());

  v1::WatchJobResponse first;
  *first.mutable_job() = watch->snapshot;
  if (!writer->Write(first)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  if (IsFinalState(watch->snapshot.state())) return grpc::Status::OK;

  while (true) {
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    std::optional<WatchUpdate> update = watch->updates->Next(kWatchPoll);
    if (!update.has_value()) {
      if (watch->updates->lagging()) {
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "watcher fell behind: read the job and its events, then watch again");
      }
      if (watch->updates->closed()) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
      }
      continue;
    }
    v1::WatchJobResponse message;
    *message.mutable_job() = update->job;
    if (update->event.has_value()) *message.mutable_event() = *update->event;
    if (!writer->Write(message)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    // The stream ends with the event that made the job final.
    const bool final_event = update->event.has_value() && IsFinalState(update->event->state());
    if (final_event || (!update->event.has_value() && IsFinalState(update->job.state()))) {
      return grpc::Status::OK;
    }
  }
}

grpc::Status JobServiceImpl::ListJobEvents(grpc::ServerContext* context,
                                           const v1::ListJobEventsRequest* request,
                                           v1::ListJobEventsResponse* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    TL_ASSIGN_OR_RETURN(std::vector<v1::JobEvent> events,
                        scheduler_.ListJobEvents(tenant, request->id()));
    for (v1::JobEvent& event : events) *response->add_events() = std::move(event);
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::GetProgressHistory(grpc::ServerContext* context,
                                                const v1::GetProgressHistoryRequest* request,
                                                v1::ProgressHistory* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    TL_ASSIGN_OR_RETURN(*response, scheduler_.GetProgressHistory(tenant, request->id()));
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::GetCostReport(grpc::ServerContext* context,
                                           const v1::GetCostReportRequest* request,
                                           v1::CostReport* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    TL_ASSIGN_OR_RETURN(*response, scheduler_.GetCostReport(tenant, request->id()));
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::GetParetoFront(grpc::ServerContext* context,
                                            const v1::GetParetoFrontRequest* request,
                                            v1::ParetoFront* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    const std::map<std::string, std::string> labels(request->labels().begin(),
                                                    request->labels().end());
    TL_ASSIGN_OR_RETURN(*response, scheduler_.GetParetoFront(tenant, labels));
    return absl::OkStatus();
  });
}

grpc::Status JobServiceImpl::ListWorkers(grpc::ServerContext* context,
                                         const v1::ListWorkersRequest* request,
                                         v1::ListWorkersResponse* response) {
  return Authenticated(authenticator_, *context, [&](const std::string& tenant) -> absl::Status {
    TL_ASSIGN_OR_RETURN(std::vector<v1::Worker> workers, scheduler_.ListWorkers(tenant));
    for (v1::Worker& worker : workers) *response->add_workers() = std::move(worker);
    return absl::OkStatus();
  });
}

}  // namespace tuneledger
