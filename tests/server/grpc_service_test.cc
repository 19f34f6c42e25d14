// JobService and WorkerService in-process on 127.0.0.1:0, through real gRPC channels.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/base/clock.h"
#include "server/core/job_store.h"
#include "server/core/scheduler.h"
#include "server/metrics/server_metrics.h"
#include "server/service/authenticator.h"
#include "server/service/grpc_server.h"
#include "tests/server/job_fixtures.h"
#include "tests/testing/status_matchers.h"
#include "tuneledger/v1/jobs.grpc.pb.h"
#include "tuneledger/v1/worker.grpc.pb.h"

namespace tuneledger {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::tuneledger::testing::CpuWorker;
using ::tuneledger::testing::JobInputs;
using ::tuneledger::testing::MakeJobInputs;
using ::tuneledger::testing::TempDir;
using ::tuneledger::testing::ValidSpec;

constexpr absl::Duration kRpcDeadline = absl::Seconds(10);

// Prints code and message when an RPC status is not what a test expects.
std::string Describe(const grpc::Status& status) {
  return absl::StrCat("code ", status.error_code(), ": ", status.error_message());
}

class GrpcServiceTest : public ::testing::Test {
 protected:
  GrpcServiceTest() : metrics_(registry_, clock_) {}

  void SetUp() override { Start(std::nullopt); }
  void TearDown() override { Stop(); }

  void Start(std::optional<std::string> tokens) {
    absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(dir_.File("db"), clock_);
    ASSERT_OK(store);
    store_ = *std::move(store);
    SchedulerOptions options;
    options.start_ticker = false;
    scheduler_ = std::make_unique<Scheduler>(*store_, metrics_, clock_, options);
    ASSERT_OK(scheduler_->Start());
    if (tokens.has_value()) {
      absl::StatusOr<Authenticator> authenticator = Authenticator::FromTokensText(*tokens, "test");
      ASSERT_OK(authenticator);
      authenticator_ = std::make_unique<Authenticator>(*authenticator);
    } else {
      authenticator_ = std::make_unique<Authenticator>(Authenticator::AllowAll());
    }
    GrpcServerOptions server_options;
    server_options.listen_address = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start(server_options, *scheduler_, *authenticator_, metrics_);
    ASSERT_OK(server);
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel);
    workers_ = v1::WorkerService::NewStub(channel);
  }
  void Stop() {
    if (scheduler_ != nullptr) scheduler_->Stop();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
    server_.reset();
    scheduler_.reset();
    store_.reset();
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token = "") {
    std::unique_ptr<grpc::ClientContext> context = Context(kRpcDeadline);
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration deadline) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
    return context;
  }
  grpc::Status Submit(const v1::JobSpec& spec, v1::Job* job = nullptr,
                      const std::string& token = "") {
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(Context(token).get(), request, &response);
    if (job != nullptr) *job = response.job();
    return status;
  }
  std::vector<v1::Job> List(const std::string& token = "") {
    v1::ListJobsResponse response;
    const grpc::Status status =
        jobs_->ListJobs(Context(token).get(), v1::ListJobsRequest(), &response);
    EXPECT_TRUE(status.ok()) << Describe(status);
    return {response.jobs().begin(), response.jobs().end()};
  }
  std::string RegisterWorker() {
    v1::RegisterWorkerRequest request;
    *request.mutable_info() = CpuWorker();
    v1::RegisterWorkerResponse response;
    const grpc::Status status = workers_->RegisterWorker(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << Describe(status);
    return response.worker_id();
  }
  v1::Lease LeaseOne(const std::string& worker) {
    v1::LeaseJobRequest request;
    request.set_worker_id(worker);
    v1::LeaseJobResponse response;
    const grpc::Status status = workers_->LeaseJob(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << Describe(status);
    EXPECT_TRUE(response.has_lease());
    return response.lease();
  }
  // A PROGRESS report of `lease`'s attempt at `step` of `total_steps`.
  static v1::ProgressReport ProgressAt(const std::string& worker, const v1::Lease& lease, int step,
                                       int total_steps) {
    v1::ProgressReport report;
    report.set_worker_id(worker);
    report.set_job_id(lease.job_id());
    report.set_attempt(lease.attempt());
    report.mutable_update()->set_kind(v1::TrainerUpdate::PROGRESS);
    report.mutable_update()->set_step(step);
    report.mutable_update()->set_total_steps(total_steps);
    return report;
  }
  std::string Scrape() { return prometheus::TextSerializer().Serialize(registry_.Collect()); }

  TempDir dir_;
  FakeClock clock_;
  prometheus::Registry registry_;
  ServerMetrics metrics_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Authenticator> authenticator_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

TEST_F(GrpcServiceTest, BadSubmitsAreInvalidArgumentNamingTheFieldAndStoreNothing) {
  const JobInputs inputs = MakeJobInputs(dir_);
  struct BadSubmit {
    std::string what;
    std::function<void(v1::JobSpec&)> break_spec;
    std::string field;
  };
  const std::vector<BadSubmit> cases = {
      {"missing model folder",
       [&](v1::JobSpec& s) { s.set_model_path(dir_.File("no-such-model")); }, "spec.model_path"},
      {"negative lr", [](v1::JobSpec& s) { s.mutable_training()->set_learning_rate(-1e-4); },
       "spec.training.learning_rate"},
      {"lora r 0", [](v1::JobSpec& s) { s.mutable_lora()->set_r(0); }, "spec.lora.r"},
      {"unknown target module", [](v1::JobSpec& s) { s.mutable_lora()->add_target_modules("mlp"); },
       "spec.lora.target_modules[0]"},
      {"zero budget", [](v1::JobSpec& s) { s.mutable_budget()->set_usd(0); }, "spec.budget.usd"},
  };
  for (const BadSubmit& bad : cases) {
    v1::JobSpec spec = ValidSpec(inputs);
    bad.break_spec(spec);
    const grpc::Status status = Submit(spec);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << bad.what << ": " << Describe(status);
    EXPECT_THAT(status.error_message(), HasSubstr(bad.field)) << bad.what;
  }
  EXPECT_THAT(List(), IsEmpty()) << "nothing stored";
  v1::Job job;
  const grpc::Status ok = Submit(ValidSpec(inputs), &job);
  ASSERT_TRUE(ok.ok()) << Describe(ok);
  EXPECT_EQ(job.state(), v1::Job::QUEUED);
  EXPECT_EQ(job.id(), "1") << "ids are decimal strings";
}

TEST_F(GrpcServiceTest, UnknownIdsAreNotFound) {
  v1::Job job;
  v1::GetJobRequest get;
  get.set_id("424242");
  EXPECT_EQ(jobs_->GetJob(Context().get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::CancelJobRequest cancel;
  cancel.set_id("424242");
  EXPECT_EQ(jobs_->CancelJob(Context().get(), cancel, &job).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::ListJobEventsRequest events;
  events.set_id("not-a-number");
  v1::ListJobEventsResponse events_response;
  EXPECT_EQ(jobs_->ListJobEvents(Context().get(), events, &events_response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::GetCostReportRequest cost;
  cost.set_id("7");
  v1::CostReport report;
  EXPECT_EQ(jobs_->GetCostReport(Context().get(), cost, &report).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::WatchJobRequest watch;
  watch.set_id("7");
  auto context = Context();
  std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader =
      jobs_->WatchJob(context.get(), watch);
  v1::WatchJobResponse message;
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, CancellingAFinishedJobIsFailedPrecondition) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  v1::CancelJobRequest cancel;
  cancel.set_id(job.id());
  v1::Job cancelled;
  const grpc::Status first = jobs_->CancelJob(Context().get(), cancel, &cancelled);
  ASSERT_TRUE(first.ok()) << Describe(first);
  EXPECT_EQ(cancelled.state(), v1::Job::CANCELLED);
  EXPECT_EQ(cancelled.reason(), v1::Job::USER);
  const grpc::Status again = jobs_->CancelJob(Context().get(), cancel, &cancelled);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << Describe(again);
  EXPECT_THAT(again.error_message(), HasSubstr("is CANCELLED"));
}

TEST_F(GrpcServiceTest, TokensMapCallersToTenants) {
  Stop();
  Start("# test tokens\ntok-alice alice\ntok-bob bob\n");
  const JobInputs inputs = MakeJobInputs(dir_);
  EXPECT_EQ(Submit(ValidSpec(inputs)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Submit(ValidSpec(inputs), nullptr, "tok-mallory").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(inputs), &job, "tok-alice").ok());
  EXPECT_EQ(job.tenant(), "alice");

  v1::GetJobRequest get;
  get.set_id(job.id());
  v1::Job fetched;
  EXPECT_TRUE(jobs_->GetJob(Context("tok-alice").get(), get, &fetched).ok());
  const grpc::Status other = jobs_->GetJob(Context("tok-bob").get(), get, &fetched);
  EXPECT_EQ(other.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(other);
  EXPECT_THAT(List("tok-bob"), IsEmpty()) << "bob sees only bob's jobs";
  v1::GetProgressHistoryRequest history_request;
  history_request.set_id(job.id());
  v1::ProgressHistory history;
  EXPECT_EQ(
      jobs_->GetProgressHistory(Context("tok-bob").get(), history_request, &history).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(List("tok-alice").size(), 1u);
}

TEST_F(GrpcServiceTest, ReportProgressStreamCarriesCancelAsSoonAsItHappens) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  const std::string worker = RegisterWorker();
  const v1::Lease lease = LeaseOne(worker);
  ASSERT_EQ(lease.job_id(), job.id());

  auto stream_context = Context();
  auto stream = workers_->ReportProgress(stream_context.get());
  ASSERT_TRUE(stream->Write(ProgressAt(worker, lease, 1, 10)));

  // Cancel once the server has seen the report; no further report is sent after that.
  const absl::Time deadline = absl::Now() + kRpcDeadline;
  v1::Job seen;
  do {
    v1::GetJobRequest get;
    get.set_id(job.id());
    ASSERT_TRUE(jobs_->GetJob(Context().get(), get, &seen).ok());
  } while (seen.progress().step() != 1 && absl::Now() < deadline);
  ASSERT_EQ(seen.progress().step(), 1);
  v1::CancelJobRequest cancel;
  cancel.set_id(job.id());
  v1::Job cancelled;
  ASSERT_TRUE(jobs_->CancelJob(Context().get(), cancel, &cancelled).ok());

  v1::WorkerCommand command;
  ASSERT_TRUE(stream->Read(&command)) << "the CANCEL comes down without another report";
  EXPECT_EQ(command.kind(), v1::WorkerCommand::CANCEL);
  EXPECT_EQ(command.job_id(), job.id());
  EXPECT_EQ(command.reason(), v1::Job::USER);
  ASSERT_TRUE(stream->WritesDone());
  const grpc::Status finished = stream->Finish();
  EXPECT_TRUE(finished.ok()) << Describe(finished);

  v1::FinishAttemptRequest finish;
  finish.set_worker_id(worker);
  finish.set_job_id(job.id());
  finish.set_attempt(lease.attempt());
  finish.set_outcome(v1::FinishAttemptRequest::CANCELLED);
  v1::FinishAttemptResponse finish_response;
  const grpc::Status acknowledged =
      workers_->FinishAttempt(Context().get(), finish, &finish_response);
  EXPECT_TRUE(acknowledged.ok()) << Describe(acknowledged);
}

TEST_F(GrpcServiceTest, ProgressHistoryHoldsTheReportedStepsOldestFirst) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  v1::GetProgressHistoryRequest request;
  request.set_id(job.id());
  v1::ProgressHistory history;
  grpc::Status status = jobs_->GetProgressHistory(Context().get(), request, &history);
  ASSERT_TRUE(status.ok()) << Describe(status);
  EXPECT_EQ(history.job_id(), job.id());
  EXPECT_THAT(history.points(), IsEmpty()) << "a queued job has no progress yet";

  const std::string worker = RegisterWorker();
  const v1::Lease lease = LeaseOne(worker);
  auto stream_context = Context();
  auto stream = workers_->ReportProgress(stream_context.get());
  for (int step = 1; step <= 3; ++step) {
    v1::ProgressReport report = ProgressAt(worker, lease, step, 10);
    report.mutable_update()->set_loss(4.0 - step);
    ASSERT_TRUE(stream->Write(report));
  }
  const absl::Time deadline = absl::Now() + kRpcDeadline;
  do {
    history.Clear();
    status = jobs_->GetProgressHistory(Context().get(), request, &history);
    ASSERT_TRUE(status.ok()) << Describe(status);
  } while (history.points_size() < 3 && absl::Now() < deadline);
  ASSERT_EQ(history.points_size(), 3) << history.DebugString();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(history.points(i).step(), i + 1);
    EXPECT_DOUBLE_EQ(history.points(i).loss(), 3.0 - i);
  }
  ASSERT_TRUE(stream->WritesDone());
  const grpc::Status closed = stream->Finish();
  EXPECT_TRUE(closed.ok()) << Describe(closed);

  request.set_id("424242");
  EXPECT_EQ(jobs_->GetProgressHistory(Context().get(), request, &history).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, WatchJobSendsTheSnapshotThenEveryEventAndEndsAtTheFinalState) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  v1::WatchJobRequest watch;
  watch.set_id(job.id());
  auto watch_context = Context();
  std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader =
      jobs_->WatchJob(watch_context.get(), watch);
  v1::WatchJobResponse snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_FALSE(snapshot.has_event());
  EXPECT_EQ(snapshot.job().state(), v1::Job::QUEUED);

  const std::string worker = RegisterWorker();
  const v1::Lease lease = LeaseOne(worker);
  v1::FinishAttemptRequest finish;
  finish.set_worker_id(worker);
  finish.set_job_id(lease.job_id());
  finish.set_attempt(lease.attempt());
  finish.set_outcome(v1::FinishAttemptRequest::SUCCEEDED);
  finish.set_adapter_path("/adapters/1");
  v1::FinishAttemptResponse finish_response;
  ASSERT_TRUE(workers_->FinishAttempt(Context().get(), finish, &finish_response).ok());

  std::vector<v1::JobEvent::Kind> events;
  v1::WatchJobResponse message;
  while (reader->Read(&message)) {
    if (message.has_event()) events.push_back(message.event().kind());
  }
  const grpc::Status ended = reader->Finish();
  EXPECT_TRUE(ended.ok()) << Describe(ended);
  EXPECT_THAT(events, ElementsAre(v1::JobEvent::STARTED, v1::JobEvent::SUCCEEDED));
  EXPECT_EQ(message.job().state(), v1::Job::SUCCEEDED);
  EXPECT_EQ(message.job().adapter_path(), "/adapters/1");
}

TEST_F(GrpcServiceTest, ManyWatchersThatDoNotReadDoNotSlowProgressIntake) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  constexpr int kWatchers = 20;
  constexpr int kReports = 300;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>>> watchers;
  for (int i = 0; i < kWatchers; ++i) {
    v1::WatchJobRequest watch;
    watch.set_id(job.id());
    contexts.push_back(Context(absl::Seconds(60)));
    watchers.push_back(jobs_->WatchJob(contexts.back().get(), watch));
    v1::WatchJobResponse snapshot;
    ASSERT_TRUE(watchers.back()->Read(&snapshot)) << "watcher " << i;
  }
  // From here on the watchers read nothing until every report has been taken in.
  const std::string worker = RegisterWorker();
  const v1::Lease lease = LeaseOne(worker);
  auto stream_context = Context(absl::Seconds(60));
  auto stream = workers_->ReportProgress(stream_context.get());
  for (int step = 1; step <= kReports; ++step) {
    ASSERT_TRUE(stream->Write(ProgressAt(worker, lease, step, kReports))) << "step " << step;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  v1::Job seen;
  do {
    v1::GetJobRequest get;
    get.set_id(job.id());
    ASSERT_TRUE(jobs_->GetJob(Context().get(), get, &seen).ok());
  } while (seen.progress().step() < kReports && absl::Now() < deadline);
  EXPECT_EQ(seen.progress().step(), kReports) << "intake did not keep up";
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_TRUE(stream->Finish().ok());

  v1::FinishAttemptRequest finish;
  finish.set_worker_id(worker);
  finish.set_job_id(lease.job_id());
  finish.set_attempt(lease.attempt());
  finish.set_outcome(v1::FinishAttemptRequest::SUCCEEDED);
  v1::FinishAttemptResponse finish_response;
  ASSERT_TRUE(workers_->FinishAttempt(Context().get(), finish, &finish_response).ok());

  // Every watcher then catches up: the latest progress and every event, ending at SUCCEEDED.
  for (int i = 0; i < kWatchers; ++i) {
    std::vector<v1::JobEvent::Kind> events;
    int last_step = 0;
    v1::WatchJobResponse message;
    while (watchers[i]->Read(&message)) {
      if (message.has_event()) events.push_back(message.event().kind());
      last_step = std::max(last_step, message.job().progress().step());
    }
    const grpc::Status ended = watchers[i]->Finish();
    EXPECT_TRUE(ended.ok()) << "watcher " << i << ": " << Describe(ended);
    EXPECT_THAT(events, ElementsAre(v1::JobEvent::STARTED, v1::JobEvent::SUCCEEDED))
        << "watcher " << i;
    EXPECT_EQ(last_step, kReports) << "watcher " << i;
  }
}

TEST_F(GrpcServiceTest, EveryRpcIsTimedByMethodAndCode) {
  v1::GetJobRequest get;
  get.set_id("99");
  v1::Job job;
  ASSERT_EQ(jobs_->GetJob(Context().get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  List();
  bool found_not_found = false;
  bool found_ok = false;
  for (absl::string_view line : absl::StrSplit(Scrape(), '\n')) {
    if (!absl::StartsWith(line, "tuneledger_rpc_duration_seconds_count")) continue;
    if (absl::StrContains(line, "/tuneledger.v1.JobService/GetJob") &&
        absl::StrContains(line, "\"NOT_FOUND\"")) {
      found_not_found = true;
    }
    if (absl::StrContains(line, "/tuneledger.v1.JobService/ListJobs") &&
        absl::StrContains(line, "\"OK\"")) {
      found_ok = true;
    }
  }
  EXPECT_TRUE(found_not_found) << Scrape();
  EXPECT_TRUE(found_ok) << Scrape();
}

}  // namespace
}  // namespace tuneledger
