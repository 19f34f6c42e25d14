// JobService and WorkerService in-process on 127.0.0.1:0, through real gRPC channels.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/clock.h"
#include "base/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/job_store.h"
#include "server/core/scheduler.h"
#include "server/metrics/server_metrics.h"
#include "server/service/authenticator.h"
#include "server/service/grpc_server.h"
#include "tests/server/job_fixtures.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_certificates.h"
#include "tuneledger/v1/jobs.grpc.pb.h"
#include "tuneledger/v1/worker.grpc.pb.h"

namespace tuneledger {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::tuneledger::testing::CpuWorker;
using ::tuneledger::testing::JobInputs;
using ::tuneledger::testing::MakeJobInputs;
using ::tuneledger::testing::MakeTestCertificates;
using ::tuneledger::testing::TempDir;
using ::tuneledger::testing::TestCertificates;
using ::tuneledger::testing::ValidSpec;

constexpr absl::Duration kRpcDeadline = absl::Seconds(10);
constexpr char kWorkerToken[] = "worker-token-for-tests";

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
    std::string roots_error;
    options.data_roots = DataRoots::Parse({dir_.path()}, &roots_error).value();
    scheduler_ = std::make_unique<Scheduler>(*store_, metrics_, clock_, options);
    ASSERT_OK(scheduler_->Start());
    if (tokens.has_value()) {
      absl::StatusOr<Authenticator> authenticator = Authenticator::FromTokensText(*tokens, "test");
      ASSERT_OK(authenticator);
      authenticator_ = std::make_unique<Authenticator>(
          authenticator->WithWorkerToken(kWorkerToken, "test-workers"));
    } else {
      authenticator_ = std::make_unique<Authenticator>(
          Authenticator::AllowAll().WithWorkerToken(kWorkerToken, "test-workers"));
    }
    GrpcServerOptions server_options;
    server_options.listen_address = "127.0.0.1:0";
    server_options.tls = tls_;
    server_options.worker_unix_address = worker_unix_address_;
    server_options.max_threads = max_threads_;
    absl::StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start(server_options, *scheduler_, *authenticator_, metrics_);
    ASSERT_OK(server);
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel);
    ASSERT_GT(server_->worker_port(), 0);
    worker_channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->worker_port()),
                                          grpc::InsecureChannelCredentials());
    workers_ = v1::WorkerService::NewStub(worker_channel_);
    public_channel_ = channel;
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
  // A WorkerService call's context: the worker token, unless `token` says otherwise.
  std::unique_ptr<grpc::ClientContext> WorkerContext(absl::Duration deadline = kRpcDeadline,
                                                     const std::string& token = kWorkerToken) {
    std::unique_ptr<grpc::ClientContext> context = Context(deadline);
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
    EXPECT_TRUE(status.ok()) << GrpcStatusText(status);
    return {response.jobs().begin(), response.jobs().end()};
  }
  std::string RegisterWorker() {
    v1::RegisterWorkerRequest request;
    *request.mutable_info() = CpuWorker();
    v1::RegisterWorkerResponse response;
    const grpc::Status status = workers_->RegisterWorker(WorkerContext().get(), request, &response);
    EXPECT_TRUE(status.ok()) << GrpcStatusText(status);
    sessions_[response.worker_id()] = response.session_token();
    return response.worker_id();
  }
  v1::Lease LeaseOne(const std::string& worker) {
    v1::LeaseJobRequest request;
    request.set_worker_id(worker);
    request.set_session_token(sessions_[worker]);
    v1::LeaseJobResponse response;
    const grpc::Status status = workers_->LeaseJob(WorkerContext().get(), request, &response);
    EXPECT_TRUE(status.ok()) << GrpcStatusText(status);
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
    report.set_lease_token(lease.lease_token());
    report.mutable_update()->set_kind(v1::TrainerUpdate::PROGRESS);
    report.mutable_update()->set_step(step);
    report.mutable_update()->set_total_steps(total_steps);
    return report;
  }
  std::string Scrape() { return prometheus::TextSerializer().Serialize(registry_.Collect()); }

  // For the next Start(): TLS on both listeners, a Unix socket for local workers.
  TlsServerPem tls_;
  std::string worker_unix_address_;
  int max_threads_ = GrpcServerOptions().max_threads;

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
  std::shared_ptr<grpc::Channel> public_channel_;
  std::shared_ptr<grpc::Channel> worker_channel_;
  std::map<std::string, std::string> sessions_;  // worker id -> session token
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
        << bad.what << ": " << GrpcStatusText(status);
    EXPECT_THAT(status.error_message(), HasSubstr(bad.field)) << bad.what;
  }
  EXPECT_THAT(List(), IsEmpty()) << "nothing stored";
  v1::Job job;
  const grpc::Status ok = Submit(ValidSpec(inputs), &job);
  ASSERT_TRUE(ok.ok()) << GrpcStatusText(ok);
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
  events.set_id("31337");
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

// Issue 10: GetJob(" 1") returned job 1. An id has one spelling; any other is INVALID_ARGUMENT
// naming the field, on every call that takes a job id, even while job 1 exists.
TEST_F(GrpcServiceTest, JobIdsOtherThanTheCanonicalDecimalAreInvalidArgumentNamingTheField) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  ASSERT_EQ(job.id(), "1");
  for (const std::string& id :
       std::vector<std::string>{" 1", "1 ", "01", "+1", "-1", "0", "1e0", "", "not-a-number",
                                "9223372036854775808", std::string("1\0", 2)}) {
    const std::string expected = "id: must be a job id like \"17\", got \"";
    v1::GetJobRequest get;
    get.set_id(id);
    grpc::Status status = jobs_->GetJob(Context().get(), get, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << "GetJob(\"" << id << "\")";
    EXPECT_THAT(status.error_message(), HasSubstr(expected));
    v1::CancelJobRequest cancel;
    cancel.set_id(id);
    status = jobs_->CancelJob(Context().get(), cancel, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GrpcStatusText(status);
    EXPECT_THAT(status.error_message(), HasSubstr(expected));
    v1::ListJobEventsRequest events;
    events.set_id(id);
    v1::ListJobEventsResponse events_response;
    status = jobs_->ListJobEvents(Context().get(), events, &events_response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GrpcStatusText(status);
    v1::GetCostReportRequest cost;
    cost.set_id(id);
    v1::CostReport report;
    status = jobs_->GetCostReport(Context().get(), cost, &report);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GrpcStatusText(status);
    v1::GetProgressHistoryRequest history;
    history.set_id(id);
    v1::ProgressHistory points;
    status = jobs_->GetProgressHistory(Context().get(), history, &points);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GrpcStatusText(status);
    v1::WatchJobRequest watch;
    watch.set_id(id);
    auto context = Context();
    std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader =
        jobs_->WatchJob(context.get(), watch);
    v1::WatchJobResponse message;
    EXPECT_FALSE(reader->Read(&message));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  v1::GetJobRequest get;
  get.set_id(" 1");
  const grpc::Status status = jobs_->GetJob(Context().get(), get, &job);
  EXPECT_EQ(status.error_message(), "id: must be a job id like \"17\", got \" 1\"");
  EXPECT_EQ(scheduler_->GetJob("default", "1")->state(), v1::Job::QUEUED) << "cancel left it";
}

// Issue 10: ListJobs(states: [42]) answered an empty list, as if the tenant had no jobs.
TEST_F(GrpcServiceTest, ListJobsRefusesUnknownStatesNamingTheField) {
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_))).ok());
  for (const int state : {42, 0, -1}) {
    v1::ListJobsRequest request;
    request.add_states(v1::Job::QUEUED);
    request.add_states(static_cast<v1::Job::State>(state));
    v1::ListJobsResponse response;
    const grpc::Status status = jobs_->ListJobs(Context().get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GrpcStatusText(status);
    EXPECT_THAT(status.error_message(),
                HasSubstr(absl::StrCat("states[1]: unknown value ", state, " (known: QUEUED")));
  }
  v1::ListJobsRequest queued;
  queued.add_states(v1::Job::QUEUED);
  v1::ListJobsResponse response;
  ASSERT_TRUE(jobs_->ListJobs(Context().get(), queued, &response).ok());
  EXPECT_EQ(response.jobs_size(), 1);
}

// Issue 10: two 2.5 MB jobs made ListJobs fail for their tenant. Jobs are now at most
// spec::kSpecMaxBytes, but 48 jobs of ~100 KB each (within every field limit) are ~5 MB: one
// page of them would still pass gRPC's 4 MiB limit. Pages end at kJobPageMaxBytes.
TEST_F(GrpcServiceTest, ListJobsOfManyLargeJobsStaysUnderTheByteBudgetAndPagesThroughAll) {
  const JobInputs inputs = MakeJobInputs(dir_);
  v1::JobSpec large = ValidSpec(inputs);
  std::string wide;  // 1,024 characters of 4 bytes each
  for (int i = 0; i < 1024; ++i) wide += "\xf0\x9f\x98\x80";
  for (int i = 0; i < 16; ++i) {
    v1::InheritedCost* cost = large.add_inherited_costs();
    cost->set_kind(v1::InheritedCost::DATA);
    cost->set_source("invoice");
    cost->set_description(wide);
  }
  for (int i = 0; i < 32; ++i)
    (*large.mutable_labels())["l" + std::to_string(i)] = wide.substr(0, 1024);
  std::vector<std::string> submitted;
  for (int i = 0; i < 48; ++i) {
    v1::Job job;
    const grpc::Status status = Submit(large, &job);
    ASSERT_TRUE(status.ok()) << GrpcStatusText(status).substr(0, 300);
    submitted.push_back(job.id());
  }
  std::vector<std::string> listed;
  v1::ListJobsRequest request;  // default page size: 100 jobs
  int pages = 0;
  do {
    v1::ListJobsResponse response;
    const grpc::Status status = jobs_->ListJobs(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << GrpcStatusText(status);
    EXPECT_LE(response.ByteSizeLong(), static_cast<size_t>(kJobPageMaxBytes) + 64);
    for (const v1::Job& job : response.jobs()) listed.push_back(job.id());
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty() && ++pages < 48);
  EXPECT_EQ(listed, submitted);
  EXPECT_GE(pages, 4) << "~5 MB of jobs in pages of at most 1 MiB";
}

// Issue 10: a string that is not UTF-8 made gRPC answer INTERNAL with an empty message (proto3
// refuses such strings while parsing, before any handler runs).
TEST_F(GrpcServiceTest, RequestsWithInvalidUtf8AreInvalidArgumentNamingTheField) {
  const JobInputs inputs = MakeJobInputs(dir_);
  struct BadText {
    std::string what;
    std::function<void(v1::JobSpec&)> break_spec;
    std::string error;
  };
  const std::vector<BadText> cases = {
      {"a stray byte", [](v1::JobSpec& s) { s.set_name("caf\xe9"); },
       "spec.name: must be valid UTF-8"},
      {"an overlong NUL",
       [](v1::JobSpec& s) { (*s.mutable_labels())["team"] = std::string("\xc0\x80", 2); },
       "spec.labels[\"team\"]: must be valid UTF-8"},
      {"a label key", [](v1::JobSpec& s) { (*s.mutable_labels())["\xff"] = "x"; },
       "spec.labels (a key): must be valid UTF-8"},
      {"a surrogate",
       [](v1::JobSpec& s) {
         s.mutable_lora()->add_target_modules("q_proj");
         s.mutable_lora()->add_target_modules("\xed\xa0\x80");
       },
       "spec.lora.target_modules[1]: must be valid UTF-8"},
      {"a nested message",
       [](v1::JobSpec& s) {
         v1::InheritedCost* cost = s.add_inherited_costs();
         cost->set_kind(v1::InheritedCost::DATA);
         cost->set_source("invoice");
         cost = s.add_inherited_costs();
         cost->set_kind(v1::InheritedCost::DATA);
         cost->set_source("\xf8\x88\x80\x80\x80");
       },
       "spec.inherited_costs[1].source: must be valid UTF-8"},
  };
  for (const BadText& bad : cases) {
    v1::JobSpec spec = ValidSpec(inputs);
    bad.break_spec(spec);
    const grpc::Status status = Submit(spec);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << bad.what << ": " << GrpcStatusText(status);
    EXPECT_EQ(status.error_message(), bad.error) << bad.what;
  }
  EXPECT_THAT(List(), IsEmpty()) << "nothing stored";

  v1::GetJobRequest get;
  get.set_id("1\xff");
  v1::Job job;
  grpc::Status status = jobs_->GetJob(Context().get(), get, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GrpcStatusText(status);
  EXPECT_EQ(status.error_message(), "id: must be valid UTF-8");
  v1::WatchJobRequest watch;  // a streamed call parses its request its own way
  watch.set_id("\xff");
  auto context = Context();
  std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader =
      jobs_->WatchJob(context.get(), watch);
  v1::WatchJobResponse message;
  EXPECT_FALSE(reader->Read(&message));
  status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GrpcStatusText(status);
  EXPECT_EQ(status.error_message(), "id: must be valid UTF-8");

  v1::RegisterWorkerRequest request;
  *request.mutable_info() = CpuWorker();
  request.mutable_info()->set_hostname("gpu\x80-box");
  v1::RegisterWorkerResponse response;
  status = workers_->RegisterWorker(WorkerContext().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GrpcStatusText(status);
  EXPECT_EQ(status.error_message(), "info.hostname: must be valid UTF-8");
}

// The probes of issue 10: each oversized field is refused by name, the error itself stays small,
// and nothing is stored (a retry cannot duplicate what was never stored).
TEST_F(GrpcServiceTest, OversizedSubmitsAreInvalidArgumentNamingTheFieldAndStoreNothing) {
  const JobInputs inputs = MakeJobInputs(dir_);
  struct Oversized {
    std::string what;
    std::function<void(v1::JobSpec&)> grow;
    std::string field;
  };
  const std::vector<Oversized> cases = {
      {"10k labels",
       [](v1::JobSpec& s) {
         for (int i = 0; i < 10'000; ++i) (*s.mutable_labels())["k" + std::to_string(i)] = "v";
       },
       "spec.labels: must have at most 32 labels, got 10000"},
      {"1 MB label value",
       [](v1::JobSpec& s) { (*s.mutable_labels())["team"] = std::string(1 << 20, 'v'); },
       "spec.labels[\"team\"]: must be at most 256 characters"},
      {"3 MB sample prompt",
       [](v1::JobSpec& s) { s.mutable_training()->set_sample_prompt(std::string(3 << 20, 'p')); },
       "spec.training.sample_prompt: must be at most 4096 bytes"},
      {"200 KB sample prompt",
       [](v1::JobSpec& s) { s.mutable_training()->set_sample_prompt(std::string(200 << 10, 'p')); },
       "spec.training.sample_prompt: must be at most 4096 bytes"},
      {"near 4 MB description",
       [](v1::JobSpec& s) {
         v1::InheritedCost* cost = s.add_inherited_costs();
         cost->set_kind(v1::InheritedCost::DATA);
         cost->set_source("invoice");
         cost->set_description(std::string(4'000'000, 'd'));
       },
       "spec.inherited_costs[0].description: must be at most 1024 characters"},
      {"near 4 MB name", [](v1::JobSpec& s) { s.set_name(std::string(4'000'000, 'n')); },
       "spec.name: must be at most 128 characters"},
  };
  for (const Oversized& oversized : cases) {
    v1::JobSpec spec = ValidSpec(inputs);
    oversized.grow(spec);
    const grpc::Status status = Submit(spec);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << oversized.what << ": " << GrpcStatusText(status).substr(0, 200);
    EXPECT_THAT(status.error_message(), HasSubstr(oversized.field)) << oversized.what;
    EXPECT_LT(status.error_message().size(), 2048u) << oversized.what;
  }
  EXPECT_THAT(List(), IsEmpty()) << "nothing stored";
  v1::GetJobRequest get;
  get.set_id("1");
  v1::Job job;
  EXPECT_EQ(jobs_->GetJob(Context().get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, CancellingAFinishedJobIsFailedPrecondition) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  v1::CancelJobRequest cancel;
  cancel.set_id(job.id());
  v1::Job cancelled;
  const grpc::Status first = jobs_->CancelJob(Context().get(), cancel, &cancelled);
  ASSERT_TRUE(first.ok()) << GrpcStatusText(first);
  EXPECT_EQ(cancelled.state(), v1::Job::CANCELLED);
  EXPECT_EQ(cancelled.reason(), v1::Job::USER);
  const grpc::Status again = jobs_->CancelJob(Context().get(), cancel, &cancelled);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << GrpcStatusText(again);
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
  EXPECT_EQ(other.error_code(), grpc::StatusCode::PERMISSION_DENIED) << GrpcStatusText(other);
  EXPECT_THAT(List("tok-bob"), IsEmpty()) << "bob sees only bob's jobs";
  v1::GetProgressHistoryRequest history_request;
  history_request.set_id(job.id());
  v1::ProgressHistory history;
  EXPECT_EQ(
      jobs_->GetProgressHistory(Context("tok-bob").get(), history_request, &history).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(List("tok-alice").size(), 1u);
}

// Issue 10: ListWorkers showed every tenant the ids of every tenant's running jobs.
TEST_F(GrpcServiceTest, ListWorkersShowsATenantOnlyItsOwnJobIds) {
  Stop();
  Start("tok-alice alice\ntok-bob bob\n");
  const JobInputs inputs = MakeJobInputs(dir_);
  v1::Job bobs;
  v1::Job alices;
  ASSERT_TRUE(Submit(ValidSpec(inputs), &bobs, "tok-bob").ok());
  ASSERT_TRUE(Submit(ValidSpec(inputs), &alices, "tok-alice").ok());
  const std::string bobs_worker = RegisterWorker();
  ASSERT_EQ(LeaseOne(bobs_worker).job_id(), bobs.id());
  const std::string alices_worker = RegisterWorker();
  ASSERT_EQ(LeaseOne(alices_worker).job_id(), alices.id());
  const auto job_ids_seen_by = [&](const std::string& token) {
    v1::ListWorkersResponse response;
    const grpc::Status status =
        jobs_->ListWorkers(Context(token).get(), v1::ListWorkersRequest(), &response);
    EXPECT_TRUE(status.ok()) << GrpcStatusText(status);
    std::map<std::string, std::string> job_ids;  // worker id -> job id
    for (const v1::Worker& worker : response.workers()) job_ids[worker.id()] = worker.job_id();
    return job_ids;
  };
  EXPECT_THAT(job_ids_seen_by("tok-alice"),
              ElementsAre(Pair(bobs_worker, ""), Pair(alices_worker, alices.id())));
  EXPECT_THAT(job_ids_seen_by("tok-bob"),
              ElementsAre(Pair(bobs_worker, bobs.id()), Pair(alices_worker, "")));
}

TEST_F(GrpcServiceTest, ATokensFileWithOnlyWorkerLinesLeavesJobServiceOpen) {
  Stop();
  Start("pool-token gpu-pool worker\n");
  const JobInputs inputs = MakeJobInputs(dir_);
  v1::Job job;
  const grpc::Status submitted = Submit(ValidSpec(inputs), &job);
  ASSERT_TRUE(submitted.ok()) << GrpcStatusText(submitted);
  EXPECT_EQ(job.tenant(), kDefaultTenant);
  // The file's worker token works on WorkerService, and is not a tenant token.
  v1::RegisterWorkerRequest request;
  *request.mutable_info() = CpuWorker();
  v1::RegisterWorkerResponse response;
  const grpc::Status registered =
      workers_->RegisterWorker(WorkerContext(kRpcDeadline, "pool-token").get(), request, &response);
  EXPECT_TRUE(registered.ok()) << GrpcStatusText(registered);
}

TEST_F(GrpcServiceTest, ReportProgressStreamCarriesCancelAsSoonAsItHappens) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  const std::string worker = RegisterWorker();
  const v1::Lease lease = LeaseOne(worker);
  ASSERT_EQ(lease.job_id(), job.id());

  auto stream_context = WorkerContext();
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
  EXPECT_TRUE(finished.ok()) << GrpcStatusText(finished);

  v1::FinishAttemptRequest finish;
  finish.set_worker_id(worker);
  finish.set_job_id(job.id());
  finish.set_attempt(lease.attempt());
  finish.set_lease_token(lease.lease_token());
  finish.set_outcome(v1::FinishAttemptRequest::CANCELLED);
  v1::FinishAttemptResponse finish_response;
  const grpc::Status acknowledged =
      workers_->FinishAttempt(WorkerContext().get(), finish, &finish_response);
  EXPECT_TRUE(acknowledged.ok()) << GrpcStatusText(acknowledged);
}

// Every running attempt keeps a ReportProgress stream open: five times more streams than the
// listener has threads are all heard, and every one gets its CANCEL, while unary calls go on.
TEST_F(GrpcServiceTest, ReportProgressStreamsHoldNoThreadOfTheListenersPool) {
  Stop();
  max_threads_ = 8;
  Start(std::nullopt);
  constexpr int kStreams = 40;
  struct Running {
    std::string worker;
    v1::Lease lease;
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::ProgressReport, v1::WorkerCommand>> stream;
  };
  std::vector<Running> running(kStreams);
  for (Running& attempt : running) {
    ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_))).ok());
    attempt.worker = RegisterWorker();
    attempt.lease = LeaseOne(attempt.worker);
    attempt.context = WorkerContext(absl::Seconds(60));
    attempt.stream = workers_->ReportProgress(attempt.context.get());
    ASSERT_TRUE(attempt.stream->Write(ProgressAt(attempt.worker, attempt.lease, 5, 10)));
  }

  const absl::Time deadline = absl::Now() + kRpcDeadline;
  int heard = 0;
  while (heard < kStreams && absl::Now() < deadline) {
    heard = 0;
    for (const Running& attempt : running) {
      v1::GetJobRequest get;
      get.set_id(attempt.lease.job_id());
      v1::Job seen;
      ASSERT_TRUE(jobs_->GetJob(Context().get(), get, &seen).ok());
      heard += seen.progress().step() == 5 ? 1 : 0;
    }
  }
  EXPECT_EQ(heard, kStreams) << "reports recorded from " << heard << " of " << kStreams
                             << " open streams";
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(running.front().worker);
  heartbeat.set_session_token(sessions_[running.front().worker]);
  v1::HeartbeatResponse answer;
  const grpc::Status beat = workers_->Heartbeat(WorkerContext().get(), heartbeat, &answer);
  EXPECT_TRUE(beat.ok()) << GrpcStatusText(beat);

  for (Running& attempt : running) {
    v1::CancelJobRequest cancel;
    cancel.set_id(attempt.lease.job_id());
    v1::Job cancelled;
    ASSERT_TRUE(jobs_->CancelJob(Context().get(), cancel, &cancelled).ok());
  }
  for (Running& attempt : running) {
    v1::WorkerCommand command;
    ASSERT_TRUE(attempt.stream->Read(&command)) << "no CANCEL for " << attempt.lease.job_id();
    EXPECT_EQ(command.kind(), v1::WorkerCommand::CANCEL);
    EXPECT_EQ(command.job_id(), attempt.lease.job_id());
    ASSERT_TRUE(attempt.stream->WritesDone());
    const grpc::Status finished = attempt.stream->Finish();
    EXPECT_TRUE(finished.ok()) << GrpcStatusText(finished);
  }
}

// A stream whose job was cancelled before its first report still receives the CANCEL (the
// command was issued before the stream named the attempt).
TEST_F(GrpcServiceTest, ReportProgressAfterACancelReceivesTheCancel) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  const std::string worker = RegisterWorker();
  const v1::Lease lease = LeaseOne(worker);
  v1::CancelJobRequest cancel;
  cancel.set_id(job.id());
  v1::Job cancelled;
  ASSERT_TRUE(jobs_->CancelJob(Context().get(), cancel, &cancelled).ok());

  auto stream_context = WorkerContext();
  auto stream = workers_->ReportProgress(stream_context.get());
  ASSERT_TRUE(stream->Write(ProgressAt(worker, lease, 1, 10)));
  v1::WorkerCommand command;
  ASSERT_TRUE(stream->Read(&command));
  EXPECT_EQ(command.kind(), v1::WorkerCommand::CANCEL);
  EXPECT_EQ(command.job_id(), job.id());
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&command)) << "one command per attempt";
  const grpc::Status finished = stream->Finish();
  EXPECT_TRUE(finished.ok()) << GrpcStatusText(finished);
}

TEST_F(GrpcServiceTest, ProgressHistoryHoldsTheReportedStepsOldestFirst) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  v1::GetProgressHistoryRequest request;
  request.set_id(job.id());
  v1::ProgressHistory history;
  grpc::Status status = jobs_->GetProgressHistory(Context().get(), request, &history);
  ASSERT_TRUE(status.ok()) << GrpcStatusText(status);
  EXPECT_EQ(history.job_id(), job.id());
  EXPECT_THAT(history.points(), IsEmpty()) << "a queued job has no progress yet";

  const std::string worker = RegisterWorker();
  const v1::Lease lease = LeaseOne(worker);
  auto stream_context = WorkerContext();
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
    ASSERT_TRUE(status.ok()) << GrpcStatusText(status);
  } while (history.points_size() < 3 && absl::Now() < deadline);
  ASSERT_EQ(history.points_size(), 3) << history.DebugString();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(history.points(i).step(), i + 1);
    EXPECT_DOUBLE_EQ(history.points(i).loss(), 3.0 - i);
  }
  ASSERT_TRUE(stream->WritesDone());
  const grpc::Status closed = stream->Finish();
  EXPECT_TRUE(closed.ok()) << GrpcStatusText(closed);

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
  finish.set_lease_token(lease.lease_token());
  finish.set_outcome(v1::FinishAttemptRequest::SUCCEEDED);
  finish.set_adapter_path("/adapters/1");
  v1::FinishAttemptResponse finish_response;
  ASSERT_TRUE(workers_->FinishAttempt(WorkerContext().get(), finish, &finish_response).ok());

  std::vector<v1::JobEvent::Kind> events;
  v1::WatchJobResponse message;
  while (reader->Read(&message)) {
    if (message.has_event()) events.push_back(message.event().kind());
  }
  const grpc::Status ended = reader->Finish();
  EXPECT_TRUE(ended.ok()) << GrpcStatusText(ended);
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
  auto stream_context = WorkerContext(absl::Seconds(60));
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
  finish.set_lease_token(lease.lease_token());
  finish.set_outcome(v1::FinishAttemptRequest::SUCCEEDED);
  v1::FinishAttemptResponse finish_response;
  ASSERT_TRUE(workers_->FinishAttempt(WorkerContext().get(), finish, &finish_response).ok());

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
    EXPECT_TRUE(ended.ok()) << "watcher " << i << ": " << GrpcStatusText(ended);
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

// Issue 10.1: WorkerService lives on its own listener and answers only worker credentials.
TEST_F(GrpcServiceTest, WorkerServiceIsOnItsOwnListenerAndNeedsAWorkerToken) {
  Stop();
  Start("tok-alice alice\n");
  v1::RegisterWorkerRequest request;
  *request.mutable_info() = CpuWorker();
  v1::RegisterWorkerResponse response;
  // The public port serves no WorkerService, the worker port no JobService.
  auto on_public = v1::WorkerService::NewStub(public_channel_);
  EXPECT_EQ(on_public->RegisterWorker(WorkerContext().get(), request, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  auto jobs_on_worker_port = v1::JobService::NewStub(worker_channel_);
  v1::ListJobsResponse listed;
  EXPECT_EQ(
      jobs_on_worker_port->ListJobs(Context("tok-alice").get(), v1::ListJobsRequest(), &listed)
          .error_code(),
      grpc::StatusCode::UNIMPLEMENTED);
  // No token, a tenant's token, a made-up one: refused before anything is registered.
  EXPECT_EQ(workers_->RegisterWorker(WorkerContext(kRpcDeadline, "").get(), request, &response)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  for (const std::string token : {"tok-alice", "made-up"}) {
    EXPECT_EQ(workers_->RegisterWorker(WorkerContext(kRpcDeadline, token).get(), request, &response)
                  .error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << token;
  }
  v1::LeaseJobRequest lease;
  lease.set_worker_id("w-1");
  lease.set_wait_seconds(30);
  v1::LeaseJobResponse leased;
  const absl::Time start = absl::Now();
  EXPECT_EQ(workers_->LeaseJob(WorkerContext(kRpcDeadline, "").get(), lease, &leased).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "an unauthenticated poll must not wait";
  EXPECT_TRUE(scheduler_->ListWorkers("default")->empty());
  // A worker token works; a worker token is no tenant token.
  EXPECT_TRUE(workers_->RegisterWorker(WorkerContext().get(), request, &response).ok());
  EXPECT_EQ(
      jobs_->ListJobs(Context(kWorkerToken).get(), v1::ListJobsRequest(), &listed).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
}

// Issue 10.2: with --tls-cert/--tls-key both listeners speak TLS only.
TEST_F(GrpcServiceTest, TlsListenersRefusePlaintextAndServeClientsThatTrustTheCa) {
  absl::StatusOr<TestCertificates> certs = MakeTestCertificates(dir_.File("tls"));
  ASSERT_OK(certs);
  absl::StatusOr<TlsServerPem> tls = LoadTlsServerFiles(certs->server_cert, certs->server_key, "");
  ASSERT_OK(tls);
  Stop();
  tls_ = *tls;
  Start(std::nullopt);
  const std::string public_address = absl::StrCat("127.0.0.1:", server_->port());
  const std::string worker_address = absl::StrCat("127.0.0.1:", server_->worker_port());
  absl::StatusOr<TlsClientPem> trusting = LoadTlsClientFiles(certs->ca, "", "");
  ASSERT_OK(trusting);
  absl::StatusOr<TlsClientPem> trusting_another = LoadTlsClientFiles(certs->other_ca, "", "");
  ASSERT_OK(trusting_another);

  auto list_jobs = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto stub = v1::JobService::NewStub(grpc::CreateChannel(public_address, credentials));
    v1::ListJobsResponse response;
    return stub->ListJobs(Context().get(), v1::ListJobsRequest(), &response);
  };
  auto register_worker = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto stub = v1::WorkerService::NewStub(grpc::CreateChannel(worker_address, credentials));
    v1::RegisterWorkerRequest request;
    *request.mutable_info() = CpuWorker();
    v1::RegisterWorkerResponse response;
    return stub->RegisterWorker(WorkerContext().get(), request, &response);
  };
  EXPECT_EQ(list_jobs(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(register_worker(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(list_jobs(MakeChannelCredentials(*trusting_another)).error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "a client must not accept a certificate its CA did not issue";
  const grpc::Status listed = list_jobs(MakeChannelCredentials(*trusting));
  EXPECT_TRUE(listed.ok()) << GrpcStatusText(listed);
  const grpc::Status registered = register_worker(MakeChannelCredentials(*trusting));
  EXPECT_TRUE(registered.ok()) << GrpcStatusText(registered);
}

// Issue 10.2: with --tls-client-ca the worker listener wants a client certificate that CA
// issued, on top of the worker token; the public listener asks for none.
TEST_F(GrpcServiceTest, WithAClientCaTheWorkerListenerRequiresAClientCertificate) {
  absl::StatusOr<TestCertificates> certs = MakeTestCertificates(dir_.File("tls"));
  ASSERT_OK(certs);
  absl::StatusOr<TlsServerPem> tls =
      LoadTlsServerFiles(certs->server_cert, certs->server_key, certs->ca);
  ASSERT_OK(tls);
  Stop();
  tls_ = *tls;
  Start(std::nullopt);
  const std::string worker_address = absl::StrCat("127.0.0.1:", server_->worker_port());
  auto register_worker = [&](const std::string& cert, const std::string& key) {
    absl::StatusOr<TlsClientPem> pem = LoadTlsClientFiles(certs->ca, cert, key);
    EXPECT_OK(pem);
    auto stub = v1::WorkerService::NewStub(
        grpc::CreateChannel(worker_address, MakeChannelCredentials(*pem)));
    v1::RegisterWorkerRequest request;
    *request.mutable_info() = CpuWorker();
    v1::RegisterWorkerResponse response;
    return stub->RegisterWorker(WorkerContext().get(), request, &response);
  };
  EXPECT_EQ(register_worker("", "").error_code(), grpc::StatusCode::UNAVAILABLE)
      << "no client certificate";
  EXPECT_EQ(register_worker(certs->other_client_cert, certs->other_client_key).error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "a client certificate of another CA";
  EXPECT_TRUE(scheduler_->ListWorkers("default")->empty());
  const grpc::Status registered = register_worker(certs->client_cert, certs->client_key);
  EXPECT_TRUE(registered.ok()) << GrpcStatusText(registered);

  absl::StatusOr<TlsClientPem> no_cert = LoadTlsClientFiles(certs->ca, "", "");
  ASSERT_OK(no_cert);
  auto jobs = v1::JobService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server_->port()), MakeChannelCredentials(*no_cert)));
  v1::ListJobsResponse listed;
  const grpc::Status status = jobs->ListJobs(Context().get(), v1::ListJobsRequest(), &listed);
  EXPECT_TRUE(status.ok()) << GrpcStatusText(status);
}

// Issue 10.2: the Unix socket the server's own workers dial when TLS is on (main.cc) serves
// WorkerService in plaintext, still behind the worker token.
TEST_F(GrpcServiceTest, TheLocalWorkerSocketServesWorkerServiceBehindTheToken) {
  Stop();
  worker_unix_address_ = absl::StrCat("unix:", dir_.File("workers.sock"));
  Start(std::nullopt);
  auto stub = v1::WorkerService::NewStub(
      grpc::CreateChannel(worker_unix_address_, grpc::InsecureChannelCredentials()));
  v1::RegisterWorkerRequest request;
  *request.mutable_info() = CpuWorker();
  v1::RegisterWorkerResponse response;
  EXPECT_EQ(
      stub->RegisterWorker(WorkerContext(kRpcDeadline, "").get(), request, &response).error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status registered = stub->RegisterWorker(WorkerContext().get(), request, &response);
  EXPECT_TRUE(registered.ok()) << GrpcStatusText(registered);
}

// Issue 10.1: a worker with a valid credential still cannot act as another worker, or report
// on, finish or take the commands of an attempt that is not its own.
TEST_F(GrpcServiceTest, AWorkerCannotSpeakForAnotherWorkerOrAnotherAttempt) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  const std::string victim = RegisterWorker();
  const std::string attacker = RegisterWorker();
  const v1::Lease lease = LeaseOne(victim);
  ASSERT_EQ(lease.job_id(), job.id());

  // Heartbeats and polls in the victim's name, with the attacker's own session token.
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(victim);
  heartbeat.set_session_token(sessions_[attacker]);
  v1::HeartbeatResponse heartbeat_response;
  EXPECT_EQ(workers_->Heartbeat(WorkerContext().get(), heartbeat, &heartbeat_response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::LeaseJobRequest poll;
  poll.set_worker_id(victim);
  poll.set_session_token(sessions_[attacker]);
  v1::LeaseJobResponse polled;
  EXPECT_EQ(workers_->LeaseJob(WorkerContext().get(), poll, &polled).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // Reports on the victim's attempt: as the attacker, or as the victim with a guessed token.
  v1::Lease forged = lease;
  forged.set_lease_token(std::string(lease.lease_token().size(), '0'));
  for (const auto& [worker, claimed] :
       {std::pair{attacker, lease}, std::pair{victim, forged}, std::pair{attacker, forged}}) {
    auto stream_context = WorkerContext();
    auto stream = workers_->ReportProgress(stream_context.get());
    v1::ProgressReport report = ProgressAt(worker, claimed, 7, 10);
    report.set_accrued_usd(12345);
    ASSERT_TRUE(stream->Write(report));
    stream->WritesDone();
    v1::WorkerCommand command;
    EXPECT_FALSE(stream->Read(&command));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

    v1::FinishAttemptRequest finish;
    finish.set_worker_id(worker);
    finish.set_job_id(claimed.job_id());
    finish.set_attempt(claimed.attempt());
    finish.set_lease_token(claimed.lease_token());
    finish.set_outcome(v1::FinishAttemptRequest::SUCCEEDED);
    finish.set_adapter_path("/attacker/adapter");
    v1::FinishAttemptResponse finish_response;
    EXPECT_EQ(workers_->FinishAttempt(WorkerContext().get(), finish, &finish_response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  v1::GetJobRequest get;
  get.set_id(job.id());
  v1::Job now;
  ASSERT_TRUE(jobs_->GetJob(Context().get(), get, &now).ok());
  EXPECT_EQ(now.state(), v1::Job::RUNNING) << "nobody but the victim may finish it";
  EXPECT_EQ(now.progress().step(), 0) << "no foreign report was taken";
  EXPECT_LT(now.cost().accrued_usd(), 1.0) << "no reported cost is believed";
  EXPECT_TRUE(now.adapter_path().empty());

  // The victim itself, with its lease token, is heard.
  auto stream_context = WorkerContext();
  auto stream = workers_->ReportProgress(stream_context.get());
  ASSERT_TRUE(stream->Write(ProgressAt(victim, lease, 3, 10)));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_TRUE(jobs_->GetJob(Context().get(), get, &now).ok());
  EXPECT_EQ(now.progress().step(), 3);
}

// Issue 10.3: idle long polls, authenticated or not, leave tenant calls and heartbeats alone.
TEST_F(GrpcServiceTest, ThreeHundredIdleLongPollsDoNotStopTenantCallsOrHeartbeats) {
  v1::Job job;
  ASSERT_TRUE(Submit(ValidSpec(MakeJobInputs(dir_)), &job).ok());
  v1::CancelJobRequest cancel;  // nothing is leased while the polls wait
  cancel.set_id(job.id());
  v1::Job cancelled;
  ASSERT_TRUE(jobs_->CancelJob(Context().get(), cancel, &cancelled).ok());
  const std::string heartbeating = RegisterWorker();
  std::vector<std::string> pollers;
  for (int i = 0; i < 150; ++i) pollers.push_back(RegisterWorker());

  constexpr int kPolls = 300;
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  for (int i = 0; i < kPolls; ++i) {
    // Half without credentials, half from registered workers, each asking to wait 30 s.
    contexts.push_back(WorkerContext(absl::Seconds(40), i % 2 == 0 ? "" : kWorkerToken));
  }
  std::vector<grpc::StatusCode> codes(kPolls, grpc::StatusCode::UNKNOWN);
  for (int i = 0; i < kPolls; ++i) {
    threads.emplace_back([&, i] {
      v1::LeaseJobRequest poll;
      const std::string& worker = pollers[i / 2];
      poll.set_worker_id(worker);
      poll.set_session_token(sessions_.at(worker));
      poll.set_wait_seconds(30);
      v1::LeaseJobResponse response;
      codes[i] = workers_->LeaseJob(contexts[i].get(), poll, &response).error_code();
    });
  }
  absl::SleepFor(absl::Seconds(1));  // the polls are in
  for (int call = 0; call < 19; ++call) {
    const absl::Time start = absl::Now();
    v1::GetJobRequest get;
    get.set_id(job.id());
    v1::Job seen;
    const grpc::Status got = jobs_->GetJob(Context(absl::Seconds(2)).get(), get, &seen);
    EXPECT_TRUE(got.ok()) << "GetJob " << call << ": " << GrpcStatusText(got);
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  }
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(heartbeating);
  heartbeat.set_session_token(sessions_[heartbeating]);
  v1::HeartbeatResponse answer;
  const grpc::Status beat =
      workers_->Heartbeat(WorkerContext(absl::Seconds(2)).get(), heartbeat, &answer);
  EXPECT_TRUE(beat.ok()) << GrpcStatusText(beat);
  EXPECT_TRUE(answer.known());
  for (auto& context : contexts) context->TryCancel();
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kPolls; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(codes[i], grpc::StatusCode::UNAUTHENTICATED) << "poll " << i;
    } else {  // answered at once (over a limit) or cancelled while it waited
      EXPECT_TRUE(codes[i] == grpc::StatusCode::OK || codes[i] == grpc::StatusCode::CANCELLED)
          << "poll " << i << ": " << codes[i];
    }
  }
}

// EstimateJob: authenticated like every JobService call, validated as SubmitJob is (the same
// INVALID_ARGUMENT naming the field, the input files checked), nothing stored; SubmitJob answers
// with the estimate it recorded.
TEST_F(GrpcServiceTest, EstimateJobIsAuthenticatedValidatedLikeSubmitAndStoresNothing) {
  const JobInputs inputs = MakeJobInputs(dir_);
  auto estimate = [&](const v1::JobSpec& spec, v1::JobEstimate* response,
                      const std::string& token = "") {
    v1::EstimateJobRequest request;
    *request.mutable_spec() = spec;
    return jobs_->EstimateJob(Context(token).get(), request, response);
  };
  struct BadSpec {
    std::string what;
    std::function<void(v1::JobSpec&)> break_spec;
    std::string field;
  };
  const std::vector<BadSpec> cases = {
      {"missing model folder",
       [&](v1::JobSpec& s) { s.set_model_path(dir_.File("no-such-model")); }, "spec.model_path"},
      {"missing training data",
       [&](v1::JobSpec& s) { s.set_train_path(dir_.File("no-such.jsonl")); }, "spec.train_path"},
      {"outside the data roots", [](v1::JobSpec& s) { s.set_model_path("/etc"); },
       "spec.model_path"},
      {"negative lr", [](v1::JobSpec& s) { s.mutable_training()->set_learning_rate(-1e-4); },
       "spec.training.learning_rate"},
      {"keep_fraction without a method",
       [](v1::JobSpec& s) {
         s.mutable_training()->mutable_data_selection()->set_keep_fraction(0.5);
       },
       "spec.training.data_selection"},
  };
  for (const BadSpec& bad : cases) {
    v1::JobSpec spec = ValidSpec(inputs);
    bad.break_spec(spec);
    v1::JobEstimate response;
    const grpc::Status status = estimate(spec, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << bad.what << ": " << GrpcStatusText(status);
    EXPECT_THAT(status.error_message(), HasSubstr(bad.field)) << bad.what;
    EXPECT_EQ(status.error_message(), Submit(spec).error_message()) << bad.what;
  }
  RegisterWorker();
  v1::JobEstimate response;
  const grpc::Status ok = estimate(ValidSpec(inputs), &response);
  ASSERT_TRUE(ok.ok()) << GrpcStatusText(ok);
  EXPECT_EQ(response.total_steps(), 100);
  EXPECT_EQ(response.examples(), 1);
  EXPECT_THAT(response.tokens_basis(), HasSubstr("assumed, not counted"));
  EXPECT_EQ(response.classes_size(), 1);
  EXPECT_TRUE(response.has_estimate_time());
  EXPECT_THAT(List(), IsEmpty()) << "nothing stored";

  v1::SubmitJobRequest request;
  *request.mutable_spec() = ValidSpec(inputs);
  v1::SubmitJobResponse submitted;
  const grpc::Status submit = jobs_->SubmitJob(Context().get(), request, &submitted);
  ASSERT_TRUE(submit.ok()) << GrpcStatusText(submit);
  EXPECT_EQ(submitted.estimate().tokens_to_train(), response.tokens_to_train());
  EXPECT_EQ(submitted.estimate().classes_size(), 1);

  Stop();
  Start("tok-alice alice\n");
  EXPECT_EQ(estimate(ValidSpec(inputs), &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(estimate(ValidSpec(inputs), &response, "tok-mallory").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(estimate(ValidSpec(inputs), &response, "tok-alice").ok());
}

}  // namespace
}  // namespace tuneledger
