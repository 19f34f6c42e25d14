// Budget enforcement on the real tuneledger-server and its real clock: a job with a tiny budget
// whose worker reports nothing (so only the server's own accrual can stop it) is CANCELLED with
// reason BUDGET_EXCEEDED after its 50% and 80% crossings, at most one report interval's cost
// past the budget, and the CANCEL reaches the worker on its stream.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_harness.h"
#include "tests/testing/status_matchers.h"
#include "tuneledger/v1/jobs.grpc.pb.h"
#include "tuneledger/v1/worker.grpc.pb.h"

namespace tuneledger {
namespace {

using ::testing::ElementsAre;
using ::tuneledger::testing::ServerHarness;
using ::tuneledger::testing::ServerHarnessOptions;

constexpr double kPricePerGpuHour = 3600.0;  // $1 per second
constexpr double kBudgetUsd = 2.0;
constexpr absl::Duration kReportInterval = absl::Milliseconds(200);
constexpr char kWorkerToken[] = "budget-test-worker-token";

std::unique_ptr<grpc::ClientContext> Context(absl::Duration deadline = absl::Seconds(30)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
  return context;
}
// A WorkerService call's context: it carries the worker token.
std::unique_ptr<grpc::ClientContext> WorkerContext() {
  std::unique_ptr<grpc::ClientContext> context = Context();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", kWorkerToken));
  return context;
}

TEST(BudgetEnforcementTest, ATinyBudgetCancelsTheJobWithinOneReportInterval) {
  ServerHarnessOptions options;
  // $1 per second is beyond the server's default price limit: raise it for this worker.
  options.extra_args = {"--report-interval", absl::FormatDuration(kReportInterval),
                        "--max-price-per-gpu-hour", "3600"};
  options.worker_token = kWorkerToken;
  ServerHarness server(options);
  ASSERT_OK(server.Start());
  ASSERT_OK(testing::WriteFile(server.temp_dir() + "/model/config.json", "{}"));
  ASSERT_OK(testing::WriteFile(server.temp_dir() + "/model/model.safetensors", "{}"));
  ASSERT_OK(testing::WriteFile(server.temp_dir() + "/train.jsonl", "{\"text\":\"hi\"}\n"));
  std::unique_ptr<v1::JobService::Stub> jobs = v1::JobService::NewStub(
      grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials()));
  std::unique_ptr<v1::WorkerService::Stub> workers = v1::WorkerService::NewStub(
      grpc::CreateChannel(server.worker_address(), grpc::InsecureChannelCredentials()));

  v1::SubmitJobRequest submit;
  submit.mutable_spec()->set_model_path(server.temp_dir() + "/model");
  submit.mutable_spec()->set_train_path(server.temp_dir() + "/train.jsonl");
  submit.mutable_spec()->mutable_training()->set_max_steps(1000);
  submit.mutable_spec()->mutable_budget()->set_usd(kBudgetUsd);
  v1::SubmitJobResponse submitted;
  grpc::Status status = jobs->SubmitJob(Context().get(), submit, &submitted);
  ASSERT_TRUE(status.ok()) << GrpcStatusText(status);
  const std::string job_id = submitted.job().id();

  v1::RegisterWorkerRequest register_request;
  register_request.mutable_info()->set_hostname("fake-worker");
  register_request.mutable_info()->set_accelerator("cpu");
  register_request.mutable_info()->set_gpus(1);
  register_request.mutable_info()->set_price_per_gpu_hour(kPricePerGpuHour);
  v1::RegisterWorkerResponse registered;
  status = workers->RegisterWorker(WorkerContext().get(), register_request, &registered);
  ASSERT_TRUE(status.ok()) << GrpcStatusText(status);
  EXPECT_NEAR(registered.report_interval_seconds(), absl::ToDoubleSeconds(kReportInterval), 1e-9);

  v1::LeaseJobRequest lease_request;
  lease_request.set_worker_id(registered.worker_id());
  lease_request.set_session_token(registered.session_token());
  lease_request.set_wait_seconds(10);
  v1::LeaseJobResponse leased;
  status = workers->LeaseJob(WorkerContext().get(), lease_request, &leased);
  ASSERT_TRUE(status.ok()) << GrpcStatusText(status);
  ASSERT_EQ(leased.lease().job_id(), job_id);

  // One report to open the stream, then silence: the worker never reports its cost.
  auto stream_context = WorkerContext();
  auto stream = workers->ReportProgress(stream_context.get());
  v1::ProgressReport report;
  report.set_worker_id(registered.worker_id());
  report.set_job_id(job_id);
  report.set_attempt(leased.lease().attempt());
  report.set_lease_token(leased.lease().lease_token());
  report.mutable_update()->set_kind(v1::TrainerUpdate::COST);
  ASSERT_TRUE(stream->Write(report));

  v1::WorkerCommand command;
  ASSERT_TRUE(stream->Read(&command)) << "no CANCEL came down the stream";
  EXPECT_EQ(command.kind(), v1::WorkerCommand::CANCEL);
  EXPECT_EQ(command.reason(), v1::Job::BUDGET_EXCEEDED);
  ASSERT_TRUE(stream->WritesDone());
  status = stream->Finish();
  EXPECT_TRUE(status.ok()) << GrpcStatusText(status);

  v1::GetJobRequest get;
  get.set_id(job_id);
  v1::Job job;
  status = jobs->GetJob(Context().get(), get, &job);
  ASSERT_TRUE(status.ok()) << GrpcStatusText(status);
  EXPECT_EQ(job.state(), v1::Job::CANCELLED);
  EXPECT_EQ(job.reason(), v1::Job::BUDGET_EXCEEDED);
  const double one_interval_usd =
      kPricePerGpuHour / 3600.0 * absl::ToDoubleSeconds(kReportInterval);
  EXPECT_GE(job.cost().accrued_usd(), kBudgetUsd);
  EXPECT_LE(job.cost().accrued_usd(), kBudgetUsd + one_interval_usd)
      << "expected at most one report interval ($" << one_interval_usd << ") past the $"
      << kBudgetUsd << " budget";

  v1::ListJobEventsRequest events_request;
  events_request.set_id(job_id);
  v1::ListJobEventsResponse events;
  status = jobs->ListJobEvents(Context().get(), events_request, &events);
  ASSERT_TRUE(status.ok()) << GrpcStatusText(status);
  std::vector<double> crossed_before_cancel;
  bool cancelled = false;
  for (const v1::JobEvent& event : events.events()) {
    if (event.kind() == v1::JobEvent::CANCELLED) cancelled = true;
    if (event.kind() == v1::JobEvent::BUDGET_THRESHOLD && !cancelled) {
      crossed_before_cancel.push_back(event.threshold());
    }
  }
  EXPECT_TRUE(cancelled);
  EXPECT_THAT(crossed_before_cancel, ElementsAre(0.5, 0.8, 1.0));

  v1::FinishAttemptRequest finish;
  finish.set_worker_id(registered.worker_id());
  finish.set_job_id(job_id);
  finish.set_attempt(leased.lease().attempt());
  finish.set_lease_token(leased.lease().lease_token());
  finish.set_outcome(v1::FinishAttemptRequest::CANCELLED);
  v1::FinishAttemptResponse finished;
  status = workers->FinishAttempt(WorkerContext().get(), finish, &finished);
  EXPECT_TRUE(status.ok()) << GrpcStatusText(status);

  absl::StatusOr<ExitStatus> exit = server.Stop();
  ASSERT_OK(exit);
  EXPECT_TRUE(exit->success()) << exit->ToString() << "\n" << server.LogTail();
}

}  // namespace
}  // namespace tuneledger
