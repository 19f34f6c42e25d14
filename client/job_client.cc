#include "client/job_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"
#include "base/status_macros.h"

namespace tuneledger::client {
namespace {

using tuneledger::v1::Job;
using tuneledger::v1::JobEvent;
using tuneledger::v1::Worker;

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const TlsClientPem& tls) {
  grpc::ChannelArguments args;
  // gRPC's reconnect backoff grows to 120 s by default; a watch that outlives a server restart
  // should find the new server within seconds.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(address, MakeChannelCredentials(tls), args);
}

}  // namespace

JobClient::JobClient(Options options)
    : JobClient(MakeChannel(options.address, options.tls), options) {}

JobClient::JobClient(std::shared_ptr<grpc::ChannelInterface> channel, Options options)
    : options_(std::move(options)), stub_(tuneledger::v1::JobService::NewStub(channel)) {}

void JobClient::Prepare(grpc::ClientContext& context, bool with_deadline) const {
  if (!options_.token.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  }
  if (with_deadline) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  }
}

template <typename Request, typename Response>
absl::StatusOr<Response> JobClient::Unary(grpc::Status (tuneledger::v1::JobService::Stub::*method)(
                                              grpc::ClientContext*, const Request&, Response*),
                                          const Request& request) {
  grpc::ClientContext context;
  Prepare(context, /*with_deadline=*/true);
  Response response;
  TL_RETURN_IF_ERROR(FromGrpcStatus((stub_.get()->*method)(&context, request, &response)));
  return response;
}

absl::StatusOr<tuneledger::v1::SubmitJobResponse> JobClient::Submit(
    const tuneledger::v1::JobSpec& spec) {
  tuneledger::v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  return Unary(&tuneledger::v1::JobService::Stub::SubmitJob, request);
}

absl::StatusOr<tuneledger::v1::JobEstimate> JobClient::Estimate(
    const tuneledger::v1::JobSpec& spec) {
  tuneledger::v1::EstimateJobRequest request;
  *request.mutable_spec() = spec;
  return Unary(&tuneledger::v1::JobService::Stub::EstimateJob, request);
}

absl::StatusOr<Job> JobClient::Get(const std::string& id) {
  tuneledger::v1::GetJobRequest request;
  request.set_id(id);
  return Unary(&tuneledger::v1::JobService::Stub::GetJob, request);
}

absl::StatusOr<tuneledger::v1::ListJobsResponse> JobClient::ListPage(
    const tuneledger::v1::ListJobsRequest& request) {
  return Unary(&tuneledger::v1::JobService::Stub::ListJobs, request);
}

absl::StatusOr<std::vector<Job>> JobClient::ListAll(const std::vector<Job::State>& states,
                                                    int page_size) {
  tuneledger::v1::ListJobsRequest request;
  for (Job::State state : states) request.add_states(state);
  request.set_page_size(page_size);
  std::vector<Job> jobs;
  while (true) {
    TL_ASSIGN_OR_RETURN(tuneledger::v1::ListJobsResponse page, ListPage(request));
    for (Job& job : *page.mutable_jobs()) jobs.push_back(std::move(job));
    if (page.next_page_token().empty()) break;
    if (page.next_page_token() == request.page_token()) {
      return absl::InternalError(
          absl::StrCat("ListJobs returned the same page token twice: ", request.page_token()));
    }
    request.set_page_token(page.next_page_token());
  }
  return jobs;
}

absl::StatusOr<Job> JobClient::Cancel(const std::string& id, const std::string& message) {
  tuneledger::v1::CancelJobRequest request;
  request.set_id(id);
  request.set_message(message);
  return Unary(&tuneledger::v1::JobService::Stub::CancelJob, request);
}

absl::StatusOr<std::vector<JobEvent>> JobClient::ListEvents(const std::string& id) {
  tuneledger::v1::ListJobEventsRequest request;
  request.set_id(id);
  TL_ASSIGN_OR_RETURN(const tuneledger::v1::ListJobEventsResponse response,
                      Unary(&tuneledger::v1::JobService::Stub::ListJobEvents, request));
  return std::vector<JobEvent>(response.events().begin(), response.events().end());
}

absl::StatusOr<tuneledger::v1::ProgressHistory> JobClient::GetProgressHistory(
    const std::string& id) {
  tuneledger::v1::GetProgressHistoryRequest request;
  request.set_id(id);
  return Unary(&tuneledger::v1::JobService::Stub::GetProgressHistory, request);
}

absl::StatusOr<tuneledger::v1::CostReport> JobClient::GetCostReport(const std::string& id) {
  tuneledger::v1::GetCostReportRequest request;
  request.set_id(id);
  return Unary(&tuneledger::v1::JobService::Stub::GetCostReport, request);
}

absl::StatusOr<tuneledger::v1::ParetoFront> JobClient::GetParetoFront(
    const std::map<std::string, std::string>& labels) {
  tuneledger::v1::GetParetoFrontRequest request;
  request.mutable_labels()->insert(labels.begin(), labels.end());
  return Unary(&tuneledger::v1::JobService::Stub::GetParetoFront, request);
}

absl::StatusOr<std::vector<Worker>> JobClient::ListWorkers() {
  TL_ASSIGN_OR_RETURN(
      const tuneledger::v1::ListWorkersResponse response,
      Unary(&tuneledger::v1::JobService::Stub::ListWorkers, tuneledger::v1::ListWorkersRequest()));
  return std::vector<Worker>(response.workers().begin(), response.workers().end());
}

absl::Status JobClient::Watch(
    const std::string& id,
    const std::function<bool(const tuneledger::v1::WatchJobResponse&)>& on_update) {
  grpc::ClientContext context;
  Prepare(context, /*with_deadline=*/false);
  {
    absl::MutexLock lock(&watch_mu_);
    if (watch_cancel_requested_) {
      watch_cancel_requested_ = false;
      return absl::CancelledError("watch cancelled");
    }
    watch_context_ = &context;
  }
  tuneledger::v1::WatchJobRequest request;
  request.set_id(id);
  std::unique_ptr<grpc::ClientReader<tuneledger::v1::WatchJobResponse>> reader =
      stub_->WatchJob(&context, request);
  tuneledger::v1::WatchJobResponse response;
  bool stopped_by_caller = false;
  while (reader->Read(&response)) {
    if (!on_update(response)) {
      stopped_by_caller = true;
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  {
    absl::MutexLock lock(&watch_mu_);
    watch_context_ = nullptr;
    watch_cancel_requested_ = false;
  }
  if (stopped_by_caller) return absl::CancelledError("watch stopped by the caller");
  return FromGrpcStatus(status);
}

void JobClient::CancelWatch() {
  absl::MutexLock lock(&watch_mu_);
  if (watch_context_ != nullptr) {
    watch_context_->TryCancel();
  } else {
    watch_cancel_requested_ = true;
  }
}

}  // namespace tuneledger::client
