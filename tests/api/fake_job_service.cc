#include "tests/api/fake_job_service.h"

#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace tuneledger::client::testing {

using tuneledger::v1::Job;
using tuneledger::v1::JobEvent;

void FakeJobService::SetJobs(std::vector<Job> jobs, int page_size) {
  absl::MutexLock lock(&mu_);
  jobs_ = std::move(jobs);
  page_size_ = page_size;
}

void FakeJobService::AddEventsAnswer(std::vector<JobEvent> events) {
  absl::MutexLock lock(&mu_);
  events_answers_.push_back(std::move(events));
}

void FakeJobService::AddWatchScript(WatchScript script) {
  absl::MutexLock lock(&mu_);
  watch_scripts_.push_back(std::move(script));
}

void FakeJobService::SetEstimate(tuneledger::v1::JobEstimate estimate) {
  absl::MutexLock lock(&mu_);
  estimate_ = std::move(estimate);
}

void FakeJobService::SetSubmitResponse(tuneledger::v1::SubmitJobResponse response) {
  absl::MutexLock lock(&mu_);
  submit_response_ = std::move(response);
}

void FakeJobService::SetCostReport(tuneledger::v1::CostReport report) {
  absl::MutexLock lock(&mu_);
  cost_report_ = std::move(report);
}

tuneledger::v1::JobSpec FakeJobService::last_spec() const {
  absl::MutexLock lock(&mu_);
  return last_spec_;
}

std::vector<std::string> FakeJobService::spec_calls() const {
  absl::MutexLock lock(&mu_);
  return spec_calls_;
}

FakeJobService::CallRecord FakeJobService::last_call() const {
  absl::MutexLock lock(&mu_);
  return last_call_;
}

FakeJobService::CallRecord FakeJobService::last_watch_call() const {
  absl::MutexLock lock(&mu_);
  return last_watch_call_;
}

std::vector<std::string> FakeJobService::page_tokens_seen() const {
  absl::MutexLock lock(&mu_);
  return page_tokens_seen_;
}

int FakeJobService::watch_calls() const {
  absl::MutexLock lock(&mu_);
  return watch_calls_;
}

FakeJobService::CallRecord FakeJobService::Record(grpc::ServerContext* context) const {
  CallRecord record;
  const auto& metadata = context->client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    record.authorization = std::string(it->second.data(), it->second.size());
  }
  if (context->deadline() == std::chrono::system_clock::time_point::max()) {
    record.deadline_remaining = absl::InfiniteDuration();
  } else {
    record.deadline_remaining = absl::FromChrono(context->deadline()) - absl::Now();
  }
  return record;
}

grpc::Status FakeJobService::EstimateJob(grpc::ServerContext* context,
                                         const tuneledger::v1::EstimateJobRequest* request,
                                         tuneledger::v1::JobEstimate* response) {
  absl::MutexLock lock(&mu_);
  last_call_ = Record(context);
  last_spec_ = request->spec();
  spec_calls_.push_back("EstimateJob");
  *response = estimate_;
  return grpc::Status::OK;
}

grpc::Status FakeJobService::SubmitJob(grpc::ServerContext* context,
                                       const tuneledger::v1::SubmitJobRequest* request,
                                       tuneledger::v1::SubmitJobResponse* response) {
  absl::MutexLock lock(&mu_);
  last_call_ = Record(context);
  last_spec_ = request->spec();
  spec_calls_.push_back("SubmitJob");
  *response = submit_response_;
  return grpc::Status::OK;
}

grpc::Status FakeJobService::GetCostReport(grpc::ServerContext* context,
                                           const tuneledger::v1::GetCostReportRequest* request,
                                           tuneledger::v1::CostReport* response) {
  absl::MutexLock lock(&mu_);
  last_call_ = Record(context);
  if (request->id() != cost_report_.job_id()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("job ", request->id(), " not found"));
  }
  *response = cost_report_;
  return grpc::Status::OK;
}

grpc::Status FakeJobService::GetJob(grpc::ServerContext* context,
                                    const tuneledger::v1::GetJobRequest* request, Job* response) {
  absl::MutexLock lock(&mu_);
  last_call_ = Record(context);
  for (const Job& job : jobs_) {
    if (job.id() == request->id()) {
      *response = job;
      return grpc::Status::OK;
    }
  }
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      absl::StrCat("job ", request->id(), " not found"));
}

grpc::Status FakeJobService::ListJobs(grpc::ServerContext* context,
                                      const tuneledger::v1::ListJobsRequest* request,
                                      tuneledger::v1::ListJobsResponse* response) {
  absl::MutexLock lock(&mu_);
  last_call_ = Record(context);
  page_tokens_seen_.push_back(request->page_token());
  int page = 0;
  if (!request->page_token().empty() &&
      !absl::SimpleAtoi(absl::StripPrefix(request->page_token(), "page-"), &page)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token: not mine");
  }
  const size_t begin = static_cast<size_t>(page) * page_size_;
  for (size_t i = begin; i < jobs_.size() && i < begin + page_size_; ++i) {
    *response->add_jobs() = jobs_[i];
  }
  if (begin + page_size_ < jobs_.size())
    response->set_next_page_token(absl::StrCat("page-", page + 1));
  return grpc::Status::OK;
}

grpc::Status FakeJobService::ListJobEvents(grpc::ServerContext* context,
                                           const tuneledger::v1::ListJobEventsRequest* request,
                                           tuneledger::v1::ListJobEventsResponse* response) {
  absl::MutexLock lock(&mu_);
  last_call_ = Record(context);
  if (events_answers_.empty()) return grpc::Status::OK;
  for (const JobEvent& event : events_answers_.front()) *response->add_events() = event;
  if (events_answers_.size() > 1) events_answers_.pop_front();
  return grpc::Status::OK;
}

grpc::Status FakeJobService::WatchJob(
    grpc::ServerContext* context, const tuneledger::v1::WatchJobRequest* request,
    grpc::ServerWriter<tuneledger::v1::WatchJobResponse>* writer) {
  WatchScript script;
  {
    absl::MutexLock lock(&mu_);
    last_watch_call_ = Record(context);
    ++watch_calls_;
    if (watch_scripts_.empty()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no script left");
    }
    script = std::move(watch_scripts_.front());
    watch_scripts_.pop_front();
  }
  for (const tuneledger::v1::WatchJobResponse& message : script.messages) {
    if (!writer->Write(message)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
  }
  if (script.block_until_cancelled) {
    // The sync API has no cancellation callback: poll, bounded so that a client that never
    // cancels cannot hang the test binary (the test then fails on its own checks).
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!context->IsCancelled() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
  }
  return script.status;
}

FakeServer::FakeServer() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeServer::~FakeServer() { server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1))); }

}  // namespace tuneledger::client::testing
