#include "server/core/scheduler.h"

#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/job_states.h"
#include "server/core/job_store.h"
#include "tests/server/job_fixtures.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

using ::testing::AllOf;
using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;
using ::testing::SizeIs;
using ::tuneledger::testing::CpuWorker;
using ::tuneledger::testing::EventKinds;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::testing::TempDir;
using ::tuneledger::testing::ValidSpec;

// $3600 per GPU-hour is $1 per GPU-second: costs in these tests read as seconds.
constexpr double kDollarPerSecond = 3600.0;

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : metrics_(registry_, clock_) {}

  void SetUp() override { StartScheduler(); }

  void StartScheduler() {
    if (store_ == nullptr) {
      absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(dir_.File("db"), clock_);
      ASSERT_OK(store);
      store_ = *std::move(store);
    }
    SchedulerOptions options;
    options.heartbeat_timeout = absl::Seconds(15);
    options.report_interval = absl::Seconds(1);
    options.start_ticker = false;  // the test drives Tick() with the fake clock
    options.check_inputs = false;  // specs name no real files here
    options.max_price_per_gpu_hour = 2 * kDollarPerSecond;  // prices here read as seconds
    std::string roots_error;
    std::optional<DataRoots> roots = DataRoots::Parse(data_roots_, &roots_error);
    ASSERT_TRUE(roots.has_value()) << roots_error;
    options.data_roots = *roots;
    options.max_queued_jobs_per_tenant = max_queued_jobs_per_tenant_;
    scheduler_ = std::make_unique<Scheduler>(*store_, metrics_, clock_, options);
    ASSERT_OK(scheduler_->Start());
  }

  std::string Submit(v1::JobSpec spec, const std::string& tenant = "t") {
    absl::StatusOr<EnqueueResult> result = scheduler_->SubmitJob(tenant, spec);
    EXPECT_OK(result);
    return result.ok() ? result->update.job.id() : "";
  }
  v1::JobSpec BudgetSpec(double usd, v1::Budget::Policy policy = v1::Budget::CANCEL) {
    v1::JobSpec spec = ValidSpec();
    spec.mutable_budget()->set_usd(usd);
    spec.mutable_budget()->set_policy(policy);
    return spec;
  }
  std::string Register(double price = kDollarPerSecond, bool spot = false, int gpus = 1) {
    return RegisterInfo(CpuWorker(price, spot, gpus));
  }
  // A worker whose ranks 0 listen on `host`:`port_base` + slot.
  std::string RegisterRendezvous(const std::string& host, int port_base, double price, int gpus) {
    v1::WorkerInfo info = CpuWorker(price, false, gpus);
    info.set_rendezvous_host(host);
    info.set_rendezvous_port_base(port_base);
    return RegisterInfo(info);
  }
  std::string RegisterInfo(const v1::WorkerInfo& info) {
    absl::StatusOr<v1::RegisterWorkerResponse> response =
        scheduler_->RegisterWorker(info, "test-credential");
    EXPECT_OK(response);
    if (!response.ok()) return "";
    sessions_[response->worker_id()] = response->session_token();
    return response->worker_id();
  }
  v1::LeaseJobRequest LeaseRequest(const std::string& worker) {
    v1::LeaseJobRequest request;
    request.set_worker_id(worker);
    request.set_session_token(sessions_[worker]);
    return request;
  }
  std::optional<v1::Lease> Lease(const std::string& worker) {
    v1::LeaseJobRequest request = LeaseRequest(worker);
    request.set_wait_seconds(0);
    absl::StatusOr<v1::LeaseJobResponse> response =
        scheduler_->LeaseJob(request, "test-credential");
    EXPECT_OK(response);
    if (!response.ok() || !response->has_lease()) return std::nullopt;
    return response->lease();
  }
  absl::Status Report(const std::string& worker, const v1::Lease& lease,
                      v1::TrainerUpdate::Kind kind, int step = 0, double worker_usd = 0) {
    v1::ProgressReport report;
    report.set_worker_id(worker);
    report.set_job_id(lease.job_id());
    report.set_attempt(lease.attempt());
    report.set_lease_token(lease.lease_token());
    report.set_accrued_usd(worker_usd);
    report.mutable_update()->set_kind(kind);
    report.mutable_update()->set_step(step);
    report.mutable_update()->set_total_steps(100);
    report.mutable_update()->set_loss(3.0 - step * 0.01);
    if (kind == v1::TrainerUpdate::CHECKPOINT) {
      report.mutable_update()->set_checkpoint_path("/ckpt/step-" + std::to_string(step));
    }
    return scheduler_->ReportProgress(report);
  }
  v1::HeartbeatResponse Heartbeat(const std::string& worker,
                                  const std::vector<std::string>& jobs = {}) {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker);
    request.set_session_token(sessions_[worker]);
    for (const std::string& job : jobs) request.add_running_job_ids(job);
    absl::StatusOr<v1::HeartbeatResponse> response = scheduler_->Heartbeat(request);
    EXPECT_OK(response);
    return response.ok() ? *response : v1::HeartbeatResponse();
  }
  absl::Status Finish(const std::string& worker, const v1::Lease& lease,
                      v1::FinishAttemptRequest::Outcome outcome,
                      v1::Job::Reason reason = v1::Job::REASON_UNSPECIFIED) {
    v1::FinishAttemptRequest request;
    request.set_reason(reason);
    request.set_worker_id(worker);
    request.set_job_id(lease.job_id());
    request.set_attempt(lease.attempt());
    request.set_lease_token(lease.lease_token());
    request.set_outcome(outcome);
    request.set_adapter_path("/adapters/" + lease.job_id());
    request.set_message(outcome == v1::FinishAttemptRequest::FAILED ? "CUDA out of memory" : "");
    return scheduler_->FinishAttempt(request).status();
  }
  v1::Job Job(const std::string& id) {
    absl::StatusOr<v1::Job> job = scheduler_->GetJob("t", id);
    EXPECT_OK(job);
    return job.ok() ? *job : v1::Job();
  }
  std::vector<v1::JobEvent> Events(const std::string& id) {
    absl::StatusOr<std::vector<v1::JobEvent>> events = scheduler_->ListJobEvents("t", id);
    EXPECT_OK(events);
    return events.ok() ? *events : std::vector<v1::JobEvent>();
  }

  // The value of an unlabelled gauge, if the family exists.
  std::optional<double> GaugeValue(const std::string& name) {
    for (const prometheus::MetricFamily& family : registry_.Collect()) {
      if (family.name == name && !family.metric.empty()) return family.metric[0].gauge.value;
    }
    return std::nullopt;
  }
  // The value of tuneledger_job_accrued_cost_usd for `job`, if the series exists.
  std::optional<double> AccruedCostMetric(const std::string& job) {
    return JobGaugeValue("tuneledger_job_accrued_cost_usd", job);
  }
  // The value of the per-job gauge `name` for `job`, if the series exists.
  std::optional<double> JobGaugeValue(const std::string& name, const std::string& job) {
    for (const prometheus::MetricFamily& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const prometheus::ClientMetric& metric : family.metric) {
        for (const prometheus::ClientMetric::Label& label : metric.label) {
          if (label.name == "job_id" && label.value == job) return metric.gauge.value;
        }
      }
    }
    return std::nullopt;
  }

  TempDir dir_;
  std::vector<std::string> data_roots_ = {"/"};  // StartScheduler's --data-root values
  std::map<std::string, std::string> sessions_;  // worker id -> session token
  int max_queued_jobs_per_tenant_ = SchedulerOptions().max_queued_jobs_per_tenant;
  FakeClock clock_;
  prometheus::Registry registry_;
  ServerMetrics metrics_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, DispatchesByPriorityThenFifo) {
  v1::JobSpec spec = ValidSpec();
  spec.set_priority(1);
  const std::string a = Submit(spec);
  spec.set_priority(5);
  const std::string b = Submit(spec);
  spec.set_priority(1);
  const std::string c = Submit(spec);
  spec.set_priority(-3);
  const std::string d = Submit(spec);

  absl::StatusOr<JobPage> listed = scheduler_->ListJobs("t", {v1::Job::QUEUED}, 0, "");
  ASSERT_OK(listed);
  std::vector<std::string> listed_ids;
  for (const v1::Job& job : listed->jobs) listed_ids.push_back(job.id());
  EXPECT_THAT(listed_ids, ElementsAre(b, a, c, d)) << "list shows dispatch order";

  const std::string worker = Register();
  std::vector<std::string> leased;
  while (std::optional<v1::Lease> lease = Lease(worker)) {
    leased.push_back(lease->job_id());
    ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED));
  }
  EXPECT_THAT(leased, ElementsAre(b, a, c, d));
  EXPECT_EQ(Job(b).state(), v1::Job::SUCCEEDED);
  EXPECT_EQ(Job(b).adapter_path(), "/adapters/" + b);
}

TEST_F(SchedulerTest, AWorkerRunsOnlyWhatFitsItsFreeGpus) {
  v1::JobSpec two = ValidSpec();
  two.set_gpus(2);
  const std::string big = Submit(two);
  const std::string small = Submit(ValidSpec());
  const std::string one_gpu = Register(kDollarPerSecond, false, 1);
  std::optional<v1::Lease> lease = Lease(one_gpu);
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->job_id(), small) << "the 2-GPU job does not fit a 1-GPU worker";
  EXPECT_FALSE(Lease(one_gpu).has_value()) << "its only GPU is busy";
  const std::string two_gpus = Register(kDollarPerSecond, false, 2);
  lease = Lease(two_gpus);
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->job_id(), big);
}

TEST_F(SchedulerTest, AnExpiredLeaseRequeuesTheJobAndCountsTheAttempt) {
  const std::string job = Submit(ValidSpec());
  const std::string lost_worker = Register();
  std::optional<v1::Lease> first = Lease(lost_worker);
  ASSERT_TRUE(first.has_value());
  clock_.Advance(absl::Seconds(4));
  ASSERT_OK(Report(lost_worker, *first, v1::TrainerUpdate::CHECKPOINT, 20));
  const std::string healthy = Register();

  // The first worker falls silent; the second keeps heartbeating.
  for (int i = 0; i < 16; ++i) {
    clock_.Advance(absl::Seconds(1));
    Heartbeat(healthy);
    scheduler_->Tick();
  }
  const v1::Job requeued = Job(job);
  EXPECT_EQ(requeued.state(), v1::Job::QUEUED);
  EXPECT_EQ(requeued.attempts(), 1);
  EXPECT_EQ(requeued.last_checkpoint(), "/ckpt/step-20");
  absl::StatusOr<v1::CostReport> report = scheduler_->GetCostReport("t", job);
  ASSERT_OK(report);
  ASSERT_THAT(report->attempts(), SizeIs(1));
  EXPECT_EQ(report->attempts(0).state(), "LOST");
  // Billed up to the worker's last contact (its report at 4 s), not the 19 s until expiry.
  EXPECT_NEAR(report->attempts(0).usd(), 4.0, 1e-6);
  EXPECT_THAT(EventKinds(Events(job)),
              ElementsAre(v1::JobEvent::SUBMITTED, v1::JobEvent::STARTED, v1::JobEvent::CHECKPOINT,
                          v1::JobEvent::REQUEUED));

  EXPECT_FALSE(Heartbeat(lost_worker).known()) << "a LOST worker must re-register";
  absl::StatusOr<std::vector<v1::Worker>> workers = scheduler_->ListWorkers("default");
  ASSERT_OK(workers);
  EXPECT_EQ((*workers)[0].state(), v1::Worker::LOST);

  std::optional<v1::Lease> second = Lease(healthy);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->attempt(), 2);
  EXPECT_EQ(second->resume_checkpoint(), "/ckpt/step-20");
  EXPECT_EQ(Job(job).attempts(), 2);
}

TEST_F(SchedulerTest, PastTheAttemptCapTheJobFailsWithAttemptsExhausted) {
  v1::JobSpec spec = ValidSpec();
  spec.set_max_attempts(2);
  const std::string job = Submit(spec);
  for (int attempt = 1; attempt <= 2; ++attempt) {
    const std::string worker = Register();
    std::optional<v1::Lease> lease = Lease(worker);
    ASSERT_TRUE(lease.has_value());
    EXPECT_EQ(lease->attempt(), attempt);
    clock_.Advance(absl::Seconds(16));
    scheduler_->Tick();
  }
  const v1::Job failed = Job(job);
  EXPECT_EQ(failed.state(), v1::Job::FAILED);
  EXPECT_EQ(failed.reason(), v1::Job::ATTEMPTS_EXHAUSTED);
  EXPECT_EQ(failed.attempts(), 2);
  EXPECT_FALSE(Lease(Register()).has_value()) << "a failed job is never leased again";
}

TEST_F(SchedulerTest, PreemptedAttemptRequeuesAndTrainerFailureFailsWithItsMessage) {
  const std::string job = Submit(ValidSpec());
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::PREEMPTED));
  EXPECT_EQ(Job(job).state(), v1::Job::QUEUED);
  lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->attempt(), 2);
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::FAILED));
  EXPECT_EQ(Job(job).state(), v1::Job::FAILED);
  EXPECT_EQ(Job(job).reason(), v1::Job::TRAINER_ERROR);
  EXPECT_EQ(Job(job).message(), "CUDA out of memory");
  EXPECT_THAT(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// Spot accounting: a job preempted twice (once by a lost worker, once by a clean stop without a
// final checkpoint) and stopped a third time with one shows as waste exactly the lease time
// after each attempt's last checkpoint, times price and GPUs; the saving against the declared
// on-demand price covers every attempt; the tenant's waste counter matches.
TEST_F(SchedulerTest, DataSelectionScoringIsBilledFromTheFirstScoringReportToTheLast) {
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(2);
  const std::string job = Submit(spec);
  const std::string worker = Register(kDollarPerSecond, /*spot=*/false, /*gpus=*/2);
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  auto scoring = [&](int scored, bool done) {
    v1::ProgressReport report;
    report.set_worker_id(worker);
    report.set_job_id(job);
    report.set_attempt(lease->attempt());
    report.set_lease_token(lease->lease_token());
    v1::TrainerUpdate& update = *report.mutable_update();
    update.set_kind(v1::TrainerUpdate::SCORING);
    update.set_scored_examples(scored);
    update.set_total_examples(400);
    update.set_scoring_done(done);
    if (done) update.set_kept_examples(200);
    return scheduler_->ReportProgress(report);
  };
  // Model loading (2 s) is not scoring; scoring runs from the first report (2 s) to the last (7 s).
  clock_.Advance(absl::Seconds(2));
  ASSERT_OK(scoring(0, false));
  clock_.Advance(absl::Seconds(3));
  ASSERT_OK(scoring(240, false));
  EXPECT_EQ(Job(job).progress().phase(), v1::Progress::SCORING);
  EXPECT_EQ(Job(job).progress().scored_examples(), 240);
  EXPECT_DOUBLE_EQ(Job(job).progress().ratio(), 0.6);
  clock_.Advance(absl::Seconds(2));
  ASSERT_OK(scoring(400, true));
  clock_.Advance(absl::Seconds(4));
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 3));
  EXPECT_EQ(Job(job).progress().phase(), v1::Progress::TRAINING);
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED));

  absl::StatusOr<v1::CostReport> bill = scheduler_->GetCostReport("t", job);
  ASSERT_OK(bill);
  ASSERT_EQ(bill->attempts_size(), 1);
  EXPECT_DOUBLE_EQ(bill->attempts(0).scoring_seconds(), 5);
  EXPECT_DOUBLE_EQ(bill->attempts(0).scoring_usd(), 10) << "$1 per GPU-second on two GPUs";
  EXPECT_DOUBLE_EQ(bill->scoring_usd(), 10);
  EXPECT_DOUBLE_EQ(bill->scoring_gpu_hours(), 2 * 5 / 3600.0);
  EXPECT_DOUBLE_EQ(bill->compute_usd(), 22) << "scoring is part of the 11 s lease";
  EXPECT_THAT(bill->notes(), ::testing::Contains(HasSubstr("Data selection")));
}

TEST_F(SchedulerTest, ASucceededFinishAnswersWithTheJobsFinalCostCard) {
  v1::JobSpec spec = ValidSpec();
  spec.set_name("card job");
  const std::string job = Submit(spec);
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(3));
  v1::FinishAttemptRequest finish;
  finish.set_worker_id(worker);
  finish.set_job_id(job);
  finish.set_attempt(lease->attempt());
  finish.set_lease_token(lease->lease_token());
  finish.set_outcome(v1::FinishAttemptRequest::FAILED);
  // A failed job gets no card back: there is no adapter to put it beside.
  absl::StatusOr<v1::FinishAttemptResponse> failed = scheduler_->FinishAttempt(finish);
  ASSERT_OK(failed);
  EXPECT_EQ(failed->cost_card_markdown(), "");

  const std::string second = Submit(spec);
  lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(3));
  finish.set_job_id(second);
  finish.set_attempt(lease->attempt());
  finish.set_lease_token(lease->lease_token());
  finish.set_outcome(v1::FinishAttemptRequest::SUCCEEDED);
  finish.set_adapter_path("/adapters/" + second);
  absl::StatusOr<v1::FinishAttemptResponse> succeeded = scheduler_->FinishAttempt(finish);
  ASSERT_OK(succeeded);
  const std::string& card = succeeded->cost_card_markdown();
  EXPECT_THAT(card, HasSubstr("# Cost card: card job"));
  EXPECT_THAT(card, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(card, HasSubstr("/adapters/" + second));
  EXPECT_THAT(card, HasSubstr("$3.0000")) << "3 s at $1 per GPU-second";
  absl::StatusOr<v1::CostReport> bill = scheduler_->GetCostReport("t", second);
  ASSERT_OK(bill);
  EXPECT_EQ(bill->card_markdown(), card) << "the card is the cost report's, computed once";
}

TEST_F(SchedulerTest, APreemptedJobsWasteIsTheLeaseTimeAfterEachLastCheckpoint) {
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(2);
  const std::string job = Submit(spec);
  // $1 per GPU-second on spot, $1.50 on demand: two GPUs cost $2 a second.
  auto register_spot = [&] {
    v1::WorkerInfo info = CpuWorker(kDollarPerSecond, /*spot=*/true, /*gpus=*/2);
    info.set_on_demand_price_per_gpu_hour(3 * kDollarPerSecond / 2);
    absl::StatusOr<v1::RegisterWorkerResponse> response =
        scheduler_->RegisterWorker(info, "test-credential");
    EXPECT_OK(response);
    sessions_[response->worker_id()] = response->session_token();
    return response->worker_id();
  };

  // Attempt 1: a checkpoint at 2 s, progress until 5 s, then the worker vanishes (LOST at its
  // last contact): 3 s wasted.
  const std::string vanishing = register_spot();
  std::optional<v1::Lease> lease = Lease(vanishing);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(2));
  ASSERT_OK(Report(vanishing, *lease, v1::TrainerUpdate::CHECKPOINT, 5));
  clock_.Advance(absl::Seconds(3));
  ASSERT_OK(Report(vanishing, *lease, v1::TrainerUpdate::PROGRESS, 8));
  const std::string steady = register_spot();
  for (int i = 0; i < 17; ++i) {
    clock_.Advance(absl::Seconds(1));
    Heartbeat(steady);
    scheduler_->Tick();
  }
  ASSERT_EQ(Job(job).state(), v1::Job::QUEUED);

  // Attempt 2: 4 s without a checkpoint, then preempted: all 4 s wasted.
  lease = Lease(steady);
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->attempt(), 2);
  clock_.Advance(absl::Seconds(4));
  ASSERT_OK(Report(steady, *lease, v1::TrainerUpdate::PROGRESS, 9));
  ASSERT_OK(Finish(steady, *lease, v1::FinishAttemptRequest::PREEMPTED));

  // Attempt 3: preempted cleanly, its final checkpoint handed over with the end: nothing lost.
  lease = Lease(steady);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(3));
  v1::FinishAttemptRequest stop;
  stop.set_worker_id(steady);
  stop.set_job_id(job);
  stop.set_attempt(lease->attempt());
  stop.set_lease_token(lease->lease_token());
  stop.set_outcome(v1::FinishAttemptRequest::PREEMPTED);
  stop.set_last_checkpoint("/ckpt/step-12");
  ASSERT_OK(scheduler_->FinishAttempt(stop));

  lease = Lease(steady);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK(Finish(steady, *lease, v1::FinishAttemptRequest::SUCCEEDED));

  absl::StatusOr<v1::CostReport> bill = scheduler_->GetCostReport("t", job);
  ASSERT_OK(bill);
  ASSERT_EQ(bill->attempts_size(), 4);
  EXPECT_EQ(bill->attempts(0).state(), "LOST");
  EXPECT_DOUBLE_EQ(bill->attempts(0).wasted_seconds(), 3);
  EXPECT_DOUBLE_EQ(bill->attempts(0).wasted_usd(), 6);
  EXPECT_DOUBLE_EQ(bill->attempts(1).wasted_seconds(), 4);
  EXPECT_DOUBLE_EQ(bill->attempts(1).wasted_usd(), 8);
  EXPECT_EQ(bill->attempts(2).wasted_seconds(), 0);
  EXPECT_EQ(bill->attempts(3).wasted_seconds(), 0);
  EXPECT_DOUBLE_EQ(bill->preemption_waste_usd(), 14);
  EXPECT_DOUBLE_EQ(bill->preemption_waste_gpu_hours(), 2 * 7 / 3600.0);
  // Lease seconds 5 + 4 + 3 + 1 = 13 on two GPUs: $26 on spot, $39 on demand.
  EXPECT_DOUBLE_EQ(bill->compute_usd(), 26);
  EXPECT_DOUBLE_EQ(bill->on_demand_equivalent_usd(), 39);
  EXPECT_DOUBLE_EQ(bill->spot_saving_usd(), 13);

  std::optional<double> waste_metric;
  for (const prometheus::MetricFamily& family : registry_.Collect()) {
    if (family.name == "tuneledger_preemption_waste_usd_total" && !family.metric.empty()) {
      waste_metric = family.metric[0].counter.value;
    }
  }
  EXPECT_EQ(waste_metric, 14.0);
}

// The trainer's own reasons to end (training.early_stop): an early stop is a success with
// reason EARLY_STOPPED, a diverged loss a failure with reason LOSS_DIVERGED, each in the final
// event and the finishes counter. A worker cannot claim any other reason, nor pair them wrongly.
TEST_F(SchedulerTest, TrainerReasonsEndJobsAsEarlyStoppedOrLossDivergedAndNothingElse) {
  const std::string worker = Register();
  const std::string stopped = Submit(ValidSpec());
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  for (const auto& [outcome, reason] :
       std::vector<std::pair<v1::FinishAttemptRequest::Outcome, v1::Job::Reason>>{
           {v1::FinishAttemptRequest::SUCCEEDED, v1::Job::LOSS_DIVERGED},
           {v1::FinishAttemptRequest::FAILED, v1::Job::EARLY_STOPPED},
           {v1::FinishAttemptRequest::FAILED, v1::Job::BUDGET_EXCEEDED},
           {v1::FinishAttemptRequest::SUCCEEDED, v1::Job::USER},
           {v1::FinishAttemptRequest::PREEMPTED, v1::Job::EARLY_STOPPED}}) {
    EXPECT_THAT(Finish(worker, *lease, outcome, reason),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reason: ")))
        << v1::Job::Reason_Name(reason);
  }
  EXPECT_EQ(Job(stopped).state(), v1::Job::RUNNING) << "a refused finish changes nothing";
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED, v1::Job::EARLY_STOPPED));
  EXPECT_EQ(Job(stopped).state(), v1::Job::SUCCEEDED);
  EXPECT_EQ(Job(stopped).reason(), v1::Job::EARLY_STOPPED);
  EXPECT_EQ(Job(stopped).adapter_path(), "/adapters/" + stopped);
  EXPECT_EQ(Events(stopped).back().reason(), v1::Job::EARLY_STOPPED);

  const std::string diverged = Submit(ValidSpec());
  lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::FAILED, v1::Job::LOSS_DIVERGED));
  EXPECT_EQ(Job(diverged).state(), v1::Job::FAILED);
  EXPECT_EQ(Job(diverged).reason(), v1::Job::LOSS_DIVERGED);
  EXPECT_EQ(Events(diverged).back().reason(), v1::Job::LOSS_DIVERGED);

  std::map<std::string, double> finishes;  // reason label -> count
  for (const prometheus::MetricFamily& family : registry_.Collect()) {
    if (family.name != "tuneledger_job_finishes_total") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "reason") finishes[label.value] += metric.counter.value;
      }
    }
  }
  EXPECT_EQ(finishes["EARLY_STOPPED"], 1);
  EXPECT_EQ(finishes["LOSS_DIVERGED"], 1);
}

TEST_F(SchedulerTest, BudgetCancelsWithinOneReportIntervalAfterRecordingTheThresholds) {
  const std::string job = Submit(BudgetSpec(10.0));
  const std::string worker = Register();  // $1 per second
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  int step = 0;
  while (Job(job).state() == v1::Job::RUNNING && step < 30) {
    clock_.Advance(absl::Seconds(1));  // one report interval
    ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, ++step));
  }
  const v1::Job cancelled = Job(job);
  EXPECT_EQ(cancelled.state(), v1::Job::CANCELLED);
  EXPECT_EQ(cancelled.reason(), v1::Job::BUDGET_EXCEEDED);
  // At most one report interval's cost ($1) past the $10 budget.
  EXPECT_GE(cancelled.cost().accrued_usd(), 10.0);
  EXPECT_LE(cancelled.cost().accrued_usd(), 11.0);

  const std::vector<v1::JobEvent> events = Events(job);
  std::vector<double> thresholds;
  for (const v1::JobEvent& event : events) {
    if (event.kind() == v1::JobEvent::BUDGET_THRESHOLD) thresholds.push_back(event.threshold());
  }
  EXPECT_THAT(thresholds, ElementsAre(0.5, 0.8, 1.0)) << "each crossed once, in order";
  EXPECT_EQ(events.back().kind(), v1::JobEvent::CANCELLED);
  EXPECT_EQ(events.back().reason(), v1::Job::BUDGET_EXCEEDED);

  // The worker learns it on its stream and on its heartbeat.
  std::optional<v1::WorkerCommand> command = scheduler_->CommandFor(job, lease->attempt());
  ASSERT_TRUE(command.has_value());
  EXPECT_EQ(command->kind(), v1::WorkerCommand::CANCEL);
  EXPECT_EQ(command->reason(), v1::Job::BUDGET_EXCEEDED);
  EXPECT_THAT(Heartbeat(worker, {job}).cancel_job_ids(), ElementsAre(job));
  // More reports are refused (the stream stays up to carry the CANCEL).
  EXPECT_THAT(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 99),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cancelled")));
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::CANCELLED));
  EXPECT_FALSE(scheduler_->CommandFor(job, lease->attempt()).has_value());
  EXPECT_EQ(Job(job).state(), v1::Job::CANCELLED) << "the worker's late finish changes nothing";
}

TEST_F(SchedulerTest, ServerClockAccruesForASilentWorkerAndEnforcesTheBudget) {
  const std::string job = Submit(BudgetSpec(5.0));
  const std::string worker = Register();  // $1 per second
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  // The worker heartbeats (so it is not LOST) but never reports cost; one lying report says $0.
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::COST, 0, /*worker_usd=*/0.0));
  for (int tick = 0; tick < 40 && Job(job).state() == v1::Job::RUNNING; ++tick) {
    clock_.Advance(absl::Milliseconds(500));  // the ticker's period: half a report interval
    Heartbeat(worker, {job});
    scheduler_->Tick();
  }
  const v1::Job cancelled = Job(job);
  EXPECT_EQ(cancelled.state(), v1::Job::CANCELLED);
  EXPECT_EQ(cancelled.reason(), v1::Job::BUDGET_EXCEEDED);
  EXPECT_GE(cancelled.cost().accrued_usd(), 5.0);
  EXPECT_LE(cancelled.cost().accrued_usd(), 5.5) << "charged up to the cancel instant";
  absl::StatusOr<v1::CostReport> report = scheduler_->GetCostReport("t", job);
  ASSERT_OK(report);
  EXPECT_NEAR(report->compute_usd(), cancelled.cost().accrued_usd(), 1e-9);
  EXPECT_NEAR(report->overshoot_usd(), cancelled.cost().accrued_usd() - 5.0, 1e-9);
}

TEST_F(SchedulerTest, AlertOnlyBudgetKeepsTheJobRunning) {
  const std::string job = Submit(BudgetSpec(2.0, v1::Budget::ALERT_ONLY));
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  for (int step = 1; step <= 5; ++step) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, step));
  }
  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING);
  int crossings = 0;
  for (const v1::JobEvent& event : Events(job)) {
    crossings += event.kind() == v1::JobEvent::BUDGET_THRESHOLD;
  }
  EXPECT_EQ(crossings, 3);
}

TEST_F(SchedulerTest, NoBudgetMeansNoBudgetEvents) {
  const std::string job = Submit(ValidSpec());
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  for (int step = 1; step <= 30; ++step) {
    clock_.Advance(absl::Seconds(100));
    Heartbeat(worker, {job});
    ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, step));
    scheduler_->Tick();
  }
  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING);
  EXPECT_GT(Job(job).cost().accrued_usd(), 2999.0);
  for (const v1::JobEvent& event : Events(job)) {
    EXPECT_NE(event.kind(), v1::JobEvent::BUDGET_THRESHOLD);
    EXPECT_NE(event.kind(), v1::JobEvent::PROJECTED_OVERRUN);
  }
}

TEST_F(SchedulerTest, ProjectedOverrunIsRaisedOnceFromTheObservedRate) {
  // 100 steps at 1 step/s on a $1/s worker project to ~$100 against a $60 budget.
  const std::string job = Submit(BudgetSpec(60.0));
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  for (int step = 1; step <= 20; ++step) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, step));
  }
  const v1::Job running = Job(job);
  EXPECT_NEAR(running.cost().projected_usd(), 100.0, 1.5);
  EXPECT_NEAR(running.progress().eta_seconds(), 80.0, 1e-6);
  int overruns = 0;
  for (const v1::JobEvent& event : Events(job)) {
    if (event.kind() != v1::JobEvent::PROJECTED_OVERRUN) continue;
    ++overruns;
    EXPECT_GE(event.step(), 10) << "not before 10% of the steps";
    EXPECT_GT(event.value(), 60.0) << "the projected total";
    EXPECT_NEAR(event.cost_usd(), event.step(), 1.5) << "the accrued cost: $1 per second";
  }
  EXPECT_EQ(overruns, 1);
}

TEST_F(SchedulerTest, ZeroBudgetIsRejectedAtSubmitAndNothingIsStored) {
  EXPECT_THAT(scheduler_->SubmitJob("t", BudgetSpec(0.0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.budget.usd")));
  absl::StatusOr<JobPage> jobs = scheduler_->ListJobs("t", {}, 0, "");
  ASSERT_OK(jobs);
  EXPECT_THAT(jobs->jobs, IsEmpty());
}

TEST_F(SchedulerTest, JobsOfAnotherTenantArePermissionDenied) {
  const std::string job = Submit(ValidSpec(), "alice");
  EXPECT_OK(scheduler_->GetJob("alice", job));
  EXPECT_THAT(scheduler_->GetJob("bob", job), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(scheduler_->CancelJob("bob", job, ""), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(scheduler_->ListJobs("bob", {}, 0, "")->jobs, IsEmpty());
  EXPECT_THAT(scheduler_->GetJob("alice", "12345"), StatusIs(absl::StatusCode::kNotFound));
}

// The base model's card is kept between submits while its folder is unchanged
// (Scheduler::BaseModelOf), and read again once a file in it changes.
TEST_F(SchedulerTest, EachSubmitRecordsTheBaseModelCardAsTheFolderHasItThen) {
  const v1::JobSpec spec = ValidSpec(testing::MakeJobInputs(dir_));
  dir_.Write("model/README.md", "---\nlicense: mit\n---\n");
  const std::string first = Submit(spec);
  const std::string again = Submit(spec);
  dir_.Write("model/README.md", "---\nlicense: apache-2.0\nbase_model: org/base\n---\n");
  const std::string changed = Submit(spec);
  auto license = [&](const std::string& job) {
    absl::StatusOr<JobSubmitFacts> facts = store_->GetSubmitFacts(job);
    EXPECT_OK(facts);
    return facts.ok() ? facts->base_model.license() : "";
  };
  EXPECT_EQ(license(first), "mit");
  EXPECT_EQ(license(again), "mit");
  EXPECT_EQ(license(changed), "apache-2.0");
  EXPECT_EQ(store_->GetSubmitFacts(changed)->base_model.source(), "org/base");
}

TEST_F(SchedulerTest, SubmitsPastTheTenantsQueuedJobCapAreResourceExhaustedAndStoreNothing) {
  max_queued_jobs_per_tenant_ = 2;
  scheduler_.reset();
  StartScheduler();
  v1::JobSpec keyed = ValidSpec();
  keyed.set_client_request_id("first");
  const std::string first = Submit(keyed, "alice");
  Submit(ValidSpec(), "alice");
  EXPECT_THAT(scheduler_->SubmitJob("alice", ValidSpec()),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("tenant \"alice\" has 2 QUEUED jobs"),
                             HasSubstr("cancel some or wait"))));
  absl::StatusOr<JobPage> listed = scheduler_->ListJobs("alice", {}, 0, "");
  ASSERT_OK(listed);
  EXPECT_THAT(listed->jobs, SizeIs(2)) << "the refused submit stored nothing";
  EXPECT_THAT(scheduler_->GetJob("alice", "3"), StatusIs(absl::StatusCode::kNotFound));

  absl::StatusOr<EnqueueResult> again = scheduler_->SubmitJob("alice", keyed);
  ASSERT_OK(again);  // a retry of an admitted submit still finds its job
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(again->update.job.id(), first);
  EXPECT_OK(scheduler_->SubmitJob("bob", ValidSpec()).status());  // the cap is per tenant

  const std::string worker = Register();
  ASSERT_TRUE(Lease(worker).has_value());  // one of alice's jobs starts: room for one more
  EXPECT_OK(scheduler_->SubmitJob("alice", ValidSpec()).status());
}

TEST_F(SchedulerTest, UserCancelOfARunningJobChargesUpToTheCancelAndTellsTheWorker) {
  const std::string job = Submit(ValidSpec());
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(7));
  absl::StatusOr<v1::Job> cancelled = scheduler_->CancelJob("t", job, "");
  ASSERT_OK(cancelled);
  EXPECT_EQ(cancelled->state(), v1::Job::CANCELLED);
  EXPECT_EQ(cancelled->reason(), v1::Job::USER);
  EXPECT_NEAR(cancelled->cost().accrued_usd(), 7.0, 1e-6);
  EXPECT_TRUE(scheduler_->CommandFor(job, 1).has_value());
  clock_.Advance(absl::Seconds(5));
  Heartbeat(worker, {job});
  scheduler_->Tick();
  EXPECT_NEAR(Job(job).cost().accrued_usd(), 7.0, 1e-6) << "nothing accrues after the cancel";
  EXPECT_TRUE(scheduler_->CommandFor(job, 1).has_value()) << "still waiting for the worker to stop";
  EXPECT_THAT(scheduler_->CancelJob("t", job, ""),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is CANCELLED")));
}

TEST_F(SchedulerTest, WatchersGetTheSnapshotThenEveryEventAndProgress) {
  const std::string job = Submit(ValidSpec());
  absl::StatusOr<Scheduler::Watch> watch = scheduler_->WatchJob("t", job);
  ASSERT_OK(watch);
  EXPECT_EQ(watch->snapshot.state(), v1::Job::QUEUED);
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 5));
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED));

  std::vector<v1::JobEvent::Kind> events;
  int last_step = 0;
  while (std::optional<WatchUpdate> update = watch->updates->Next(absl::ZeroDuration())) {
    if (update->event.has_value()) events.push_back(update->event->kind());
    last_step = std::max(last_step, update->job.progress().step());
  }
  EXPECT_THAT(events, ElementsAre(v1::JobEvent::STARTED, v1::JobEvent::SUCCEEDED));
  EXPECT_EQ(last_step, 5);
}

TEST_F(SchedulerTest, ALongPollWakesWhenAJobIsSubmitted) {
  const std::string worker = Register();
  std::optional<v1::LeaseJobResponse> response;
  v1::LeaseJobRequest request = LeaseRequest(worker);
  request.set_wait_seconds(30);
  std::thread poller([&] {
    absl::StatusOr<v1::LeaseJobResponse> leased = scheduler_->LeaseJob(request, "test-credential");
    if (leased.ok()) response = *leased;
  });
  const absl::Time start = absl::Now();
  const std::string job = Submit(ValidSpec());
  poller.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "woken by the submit, not the timeout";
  ASSERT_TRUE(response.has_value());
  ASSERT_TRUE(response->has_lease());
  EXPECT_EQ(response->lease().job_id(), job);
  EXPECT_EQ(response->lease().spec().lora().r(), 16) << "leased with defaults filled";
}

TEST_F(SchedulerTest, ALongPollWhoseWorkerHungUpLeasesNothing) {
  const std::string worker = Register();
  std::atomic<bool> hung_up{false};
  std::optional<v1::LeaseJobResponse> response;
  v1::LeaseJobRequest request = LeaseRequest(worker);
  request.set_wait_seconds(30);
  std::thread poller([&] {
    absl::StatusOr<v1::LeaseJobResponse> leased =
        scheduler_->LeaseJob(request, "test-credential", [&] { return hung_up.load(); });
    if (leased.ok()) response = *leased;
  });
  const absl::Time start = absl::Now();
  hung_up = true;
  poller.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "the wait ends when the caller goes";
  ASSERT_TRUE(response.has_value());
  EXPECT_FALSE(response->has_lease());
  const std::string job = Submit(ValidSpec());
  EXPECT_EQ(Job(job).state(), v1::Job::QUEUED) << "nobody leased it to the dead call";
}

TEST_F(SchedulerTest, RunningAttemptsSurviveASchedulerRestart) {
  const std::string job = Submit(BudgetSpec(100.0));
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(3));
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 3));
  scheduler_->Stop();
  scheduler_.reset();

  StartScheduler();  // same store: a restarted server
  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING);
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(Heartbeat(worker, {job}).known()) << "the worker carries on";
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 5));
  EXPECT_NEAR(Job(job).cost().accrued_usd(), 5.0, 1e-6) << "the lease kept its start";
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED));
  EXPECT_EQ(Job(job).state(), v1::Job::SUCCEEDED);
}

TEST_F(SchedulerTest, AfterARestartASilentWorkerIsLostAndItsJobRequeued) {
  const std::string job = Submit(ValidSpec());
  const std::string worker = Register();
  ASSERT_TRUE(Lease(worker).has_value());
  scheduler_->Stop();
  scheduler_.reset();
  StartScheduler();
  clock_.Advance(absl::Seconds(16));
  scheduler_->Tick();
  EXPECT_EQ(Job(job).state(), v1::Job::QUEUED);
  EXPECT_EQ(Job(job).attempts(), 1);
}

// A tenant names files only inside its data roots (base/data_roots.h): its own and the shared
// ones, links followed, relative paths against a root. A refusal names the field, says the
// same whether the path exists, and stores nothing.
TEST_F(SchedulerTest, SpecPathsMustBeInsideTheTenantsDataRoots) {
  namespace fs = std::filesystem;
  const std::string shared = dir_.File("roots/shared");
  const std::string alice = dir_.File("roots/alice");
  const std::string outside = dir_.File("outside");
  for (const std::string& folder : {shared + "/model", alice, outside}) {
    fs::create_directories(folder);
  }
  for (const std::string& file :
       {shared + "/train.jsonl", alice + "/train.jsonl", outside + "/secret.jsonl"}) {
    std::ofstream(file) << "{}\n";
  }
  fs::create_symlink(outside, shared + "/escape");
  data_roots_ = {shared, "alice=" + alice};
  scheduler_.reset();
  StartScheduler();

  v1::JobSpec spec = ValidSpec({shared + "/model", alice + "/train.jsonl"});
  absl::StatusOr<EnqueueResult> accepted = scheduler_->SubmitJob("alice", spec);
  ASSERT_OK(accepted);
  // Relative paths resolve against the roots and are stored absolute and resolved.
  accepted = scheduler_->SubmitJob("bob", ValidSpec({"model", "./train.jsonl"}));
  ASSERT_OK(accepted);
  EXPECT_EQ(accepted->update.job.spec().model_path(), fs::canonical(shared + "/model").string());
  EXPECT_EQ(accepted->update.job.spec().train_path(),
            fs::canonical(shared + "/train.jsonl").string());

  auto refusal = [&](const std::string& tenant, const std::string& train_path) {
    absl::StatusOr<EnqueueResult> result =
        scheduler_->SubmitJob(tenant, ValidSpec({shared + "/model", train_path}));
    EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.train_path")))
        << train_path;
    return result.ok() ? std::string() : std::string(result.status().message());
  };
  const std::string exists = refusal("bob", outside + "/secret.jsonl");
  EXPECT_THAT(exists, Not(HasSubstr(outside)));
  // Whether the path exists changes nothing in the answer.
  EXPECT_EQ(refusal("bob", outside + "/no-such-file.jsonl"), exists);
  EXPECT_EQ(refusal("bob", "/etc/passwd"), exists);
  EXPECT_EQ(refusal("bob", "../../outside/secret.jsonl"), exists);
  EXPECT_EQ(refusal("bob", shared + "/escape/secret.jsonl"), exists);  // a link out of a root
  EXPECT_EQ(refusal("bob", alice + "/train.jsonl"), exists);           // another tenant's root
  // The refused submits stored nothing: bob has the one job accepted above.
  EXPECT_THAT(scheduler_->ListJobs("bob", {}, 0, "")->jobs, SizeIs(1));
}

// Reports that arrive together have their part under the scheduler's mutex run by one of their
// callers for all of them (Scheduler::IntakeReports), which then hands that on to a report still
// waiting: every caller still gets its own report's answer, every job its own reports, and no
// caller is left waiting.
TEST_F(SchedulerTest, ConcurrentReportsEachGetTheirOwnAnswerAndNoCallerIsLeftWaiting) {
  constexpr int kThreads = 16;
  constexpr int kCancelled = 4;
  constexpr int kReports = 40;
  // Jobs 0..kThreads-1 run, one per thread; the next kCancelled are cancelled (each thread's
  // every other report goes to one of them, refused); the last one checkpoints: each of its
  // reports writes its checkpoint durably under the scheduler's mutex (QueueReportLocked), so
  // that the other reports gather meanwhile.
  constexpr int kCheckpointing = kThreads + kCancelled;
  std::vector<std::string> workers;
  std::vector<v1::Lease> leases;
  for (int i = 0; i <= kCheckpointing; ++i) {
    Submit(ValidSpec());
    workers.push_back(Register());
    std::optional<v1::Lease> lease = Lease(workers.back());
    ASSERT_TRUE(lease.has_value());
    leases.push_back(*lease);
  }
  for (int i = kThreads; i < kCheckpointing; ++i) {
    ASSERT_OK(scheduler_->CancelJob("t", leases[i].job_id(), "").status());
  }
  absl::Mutex mu;
  int finished = 0;
  std::vector<std::vector<absl::Status>> ran(kThreads + 1), refused(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i <= kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 1; r <= kReports; ++r) {
        if (i == kThreads) {
          ran[i].push_back(Report(workers[kCheckpointing], leases[kCheckpointing],
                                  v1::TrainerUpdate::CHECKPOINT, r));
          continue;
        }
        ran[i].push_back(Report(workers[i], leases[i], v1::TrainerUpdate::PROGRESS, i * 1000 + r));
        const int other = kThreads + (i + r) % kCancelled;
        refused[i].push_back(Report(workers[other], leases[other], v1::TrainerUpdate::PROGRESS, r));
      }
      absl::MutexLock lock(&mu);
      ++finished;
    });
  }
  const auto all_finished = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return finished == kThreads + 1;
  };
  {
    absl::MutexLock lock(&mu);
    if (!mu.AwaitWithTimeout(absl::Condition(&all_finished), absl::Seconds(60))) {
      // A caller waits for a lead that never comes: its thread can never be joined.
      std::fprintf(stderr, "%d of %d reporting threads still wait after 60 s\n",
                   kThreads + 1 - finished, kThreads + 1);
      std::abort();
    }
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : ran[kThreads]) EXPECT_OK(status);
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_THAT(ran[i], SizeIs(kReports));
    for (const absl::Status& status : ran[i]) EXPECT_OK(status);
    for (int r = 1; r <= kReports; ++r) {
      const std::string& other = leases[kThreads + (i + r) % kCancelled].job_id();
      EXPECT_THAT(refused[i][r - 1], StatusIs(absl::StatusCode::kFailedPrecondition,
                                              HasSubstr(absl::StrCat("job ", other, " "))));
    }
    absl::StatusOr<v1::Job> job = scheduler_->GetJob("t", leases[i].job_id());
    ASSERT_OK(job);
    EXPECT_EQ(job->progress().step(), i * 1000 + kReports) << "job " << leases[i].job_id();
    absl::StatusOr<std::vector<v1::Progress>> history =
        store_->ListProgressHistory(leases[i].job_id());
    ASSERT_OK(history);
    ASSERT_THAT(*history, SizeIs(kReports));
    for (int r = 0; r < kReports; ++r) EXPECT_EQ((*history)[r].step(), i * 1000 + r + 1);
  }
}

// Issue 10.1: what a worker says it cost is never believed; the server's clock alone bills.
TEST_F(SchedulerTest, AWorkersReportedCostIsNeverBelieved) {
  const std::string job = Submit(BudgetSpec(100.0));
  const std::string worker = Register();  // $1 per second
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(3));
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 3, /*worker_usd=*/12345.0));
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::COST, 3, /*worker_usd=*/1e300));
  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING) << "a made-up cost cancels nothing";
  EXPECT_NEAR(Job(job).cost().accrued_usd(), 3.0, 1e-6);
  clock_.Advance(absl::Seconds(2));
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED));
  EXPECT_NEAR(Job(job).cost().accrued_usd(), 5.0, 1e-6);
}

TEST_F(SchedulerTest, AWorkerPricedOrSizedBeyondTheServersLimitsIsRefused) {
  for (const double price : {1e300, 2 * kDollarPerSecond + 1, -1.0, std::nan("")}) {
    EXPECT_THAT(scheduler_->RegisterWorker(CpuWorker(price), "test-credential"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("price_per_gpu_hour")))
        << price;
  }
  EXPECT_THAT(scheduler_->RegisterWorker(CpuWorker(1.0, false, 100000), "test-credential"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("info.gpus")));
  EXPECT_OK(scheduler_->RegisterWorker(CpuWorker(2 * kDollarPerSecond, false, 64), "c"));
}

// Issue 10.1: heartbeats and polls need the session token issued with the worker id.
TEST_F(SchedulerTest, HeartbeatsAndPollsNeedTheWorkersSessionToken) {
  const std::string worker = Register();
  const std::string other = Register();
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(worker);
  for (const std::string& token : {std::string(), sessions_[other], sessions_[worker] + "0"}) {
    heartbeat.set_session_token(token);
    EXPECT_THAT(scheduler_->Heartbeat(heartbeat),
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("session_token")));
    v1::LeaseJobRequest poll = LeaseRequest(worker);
    poll.set_session_token(token);
    EXPECT_THAT(scheduler_->LeaseJob(poll, "test-credential"),
                StatusIs(absl::StatusCode::kPermissionDenied));
  }
  EXPECT_TRUE(Heartbeat(worker).known());
}

// Issue 10.5: a lease whose response never reached the worker is ended at the worker's next
// heartbeat that does not list it, billed nothing, and its job leased again.
TEST_F(SchedulerTest, ALeaseTheWorkerNeverReceivedIsReconciledWithinOneHeartbeat) {
  const std::string job = Submit(ValidSpec());
  const std::string worker = Register();
  std::optional<v1::Lease> lost =
      Lease(worker);  // the response is "lost": the worker never runs it
  ASSERT_TRUE(lost.has_value());
  // A heartbeat sent while the lease may still be on its way proves nothing yet.
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_TRUE(Heartbeat(worker).known());
  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING);
  // The next heartbeat (one interval later) does.
  clock_.Advance(scheduler_->options().heartbeat_interval);
  EXPECT_TRUE(Heartbeat(worker).known());
  const v1::Job requeued = Job(job);
  EXPECT_EQ(requeued.state(), v1::Job::QUEUED);
  EXPECT_EQ(requeued.attempts(), 1);
  EXPECT_NEAR(requeued.cost().accrued_usd(), 0.0, 1e-9) << "a lease never received costs nothing";
  absl::StatusOr<v1::CostReport> report = scheduler_->GetCostReport("t", job);
  ASSERT_OK(report);
  ASSERT_THAT(report->attempts(), SizeIs(1));
  EXPECT_EQ(report->attempts(0).state(), "LOST");
  std::optional<v1::Lease> again = Lease(worker);
  ASSERT_TRUE(again.has_value()) << "the worker is free again";
  EXPECT_EQ(again->attempt(), 2);

  // An attempt the worker lists stays; one it stops listing is billed to the last listing.
  clock_.Advance(absl::Seconds(3));
  EXPECT_TRUE(Heartbeat(worker, {job}).known());
  clock_.Advance(absl::Seconds(5));
  EXPECT_TRUE(Heartbeat(worker).known());
  EXPECT_EQ(Job(job).state(), v1::Job::QUEUED);
  EXPECT_NEAR(Job(job).cost().accrued_usd(), 3.0, 1e-6);
}

// A heartbeat reconciles only its own worker's attempts, and follows an attempt that moved: the
// worker it left no longer speaks for it, the worker it reached does (also after a restart).
TEST_F(SchedulerTest, AHeartbeatReconcilesOnlyTheAttemptsItsWorkerRuns) {
  const std::string first_job = Submit(ValidSpec());
  const std::string second_job = Submit(ValidSpec());
  const std::string a = Register();
  const std::string b = Register();
  std::optional<v1::Lease> on_a = Lease(a);
  std::optional<v1::Lease> on_b = Lease(b);
  ASSERT_TRUE(on_a.has_value() && on_b.has_value());
  ASSERT_EQ(on_a->job_id(), first_job);
  clock_.Advance(absl::Seconds(2));
  // a lists nothing: its attempt is lost, b's is not.
  EXPECT_TRUE(Heartbeat(a).known());
  EXPECT_EQ(Job(first_job).state(), v1::Job::QUEUED);
  EXPECT_EQ(Job(second_job).state(), v1::Job::RUNNING);

  // The first job's next attempt runs on b, beside the second job.
  ASSERT_OK(scheduler_->CancelJob("t", second_job, "make room").status());
  EXPECT_TRUE(Heartbeat(b).known());  // b stops running the cancelled attempt
  std::optional<v1::Lease> moved = Lease(b);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->job_id(), first_job);
  EXPECT_EQ(moved->attempt(), 2);
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(Heartbeat(a).known());
  EXPECT_EQ(Job(first_job).state(), v1::Job::RUNNING) << "a no longer speaks for this job";
  EXPECT_TRUE(Heartbeat(b, {first_job}).known());
  EXPECT_EQ(Job(first_job).state(), v1::Job::RUNNING);

  // After a restart the attempt is b's again: a's heartbeat leaves it, b's drops it.
  scheduler_.reset();
  StartScheduler();
  EXPECT_TRUE(Heartbeat(a).known());
  EXPECT_TRUE(Heartbeat(b, {first_job}).known());
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(Heartbeat(a).known());
  EXPECT_EQ(Job(first_job).state(), v1::Job::RUNNING);
  EXPECT_TRUE(Heartbeat(b).known());
  EXPECT_EQ(Job(first_job).state(), v1::Job::QUEUED);
  EXPECT_EQ(Job(first_job).attempts(), 2);
}

// Issue 10.5: kill the server 11.6 s into a lease, start it again 10 s later: the attempt is
// billed for the time the worker was heard from, never for the outage.
TEST_F(SchedulerTest, ATenSecondServerOutageIsNotBilled) {
  const std::string job = Submit(BudgetSpec(1000.0));
  const std::string worker = Register();  // $1 per second
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  for (int step = 1; step <= 11; ++step) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, step));
    scheduler_->Tick();
  }
  clock_.Advance(absl::Milliseconds(600));  // 11.6 s: the last report, then the crash
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::COST, 11));
  scheduler_.reset();  // no clean stop matters here: the store has what was committed

  clock_.Advance(absl::Seconds(10));  // the outage
  StartScheduler();
  scheduler_->Tick();
  EXPECT_TRUE(Heartbeat(worker, {job}).known()) << "the worker carries on";
  clock_.Advance(absl::Seconds(1));
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 12));
  EXPECT_NEAR(Job(job).cost().accrued_usd(), 12.6, 1e-6) << "11.6 s before + 1 s after";
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED));
  absl::StatusOr<v1::CostReport> report = scheduler_->GetCostReport("t", job);
  ASSERT_OK(report);
  EXPECT_NEAR(report->compute_usd(), 12.6, 1e-6);
}

// The per-job cost metric equals the bill (`tunectl cost`'s compute total) in every final state.
TEST_F(SchedulerTest, TheJobCostMetricEqualsTheBillInEveryFinalState) {
  std::map<std::string, std::string> jobs;  // how it ended -> job id

  jobs["succeeded"] = Submit(ValidSpec());
  std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Milliseconds(2300));
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 3));
  clock_.Advance(absl::Milliseconds(700));
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED));

  jobs["failed"] = Submit(ValidSpec());
  lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Milliseconds(1300));
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::FAILED));

  jobs["cancelled"] = Submit(ValidSpec());
  lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Milliseconds(1700));
  ASSERT_OK(Report(worker, *lease, v1::TrainerUpdate::PROGRESS, 1));
  clock_.Advance(absl::Milliseconds(600));  // billed by the cancel, not by a report
  ASSERT_OK(scheduler_->CancelJob("t", jobs["cancelled"], ""));
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::CANCELLED));

  jobs["over budget"] = Submit(BudgetSpec(2.5));
  const std::string budget_worker = Register();
  lease = Lease(budget_worker);
  ASSERT_TRUE(lease.has_value());
  for (int i = 0; i < 6 && Job(jobs["over budget"]).state() == v1::Job::RUNNING; ++i) {
    clock_.Advance(absl::Milliseconds(900));
    Heartbeat(budget_worker, {jobs["over budget"]});
    scheduler_->Tick();
  }

  v1::JobSpec once = ValidSpec();
  once.set_max_attempts(1);
  jobs["lost"] = Submit(once);
  const std::string vanishing = Register();
  lease = Lease(vanishing);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Milliseconds(1100));
  ASSERT_OK(Report(vanishing, *lease, v1::TrainerUpdate::PROGRESS, 1));
  for (int i = 0; i < 17; ++i) {
    clock_.Advance(absl::Seconds(1));
    Heartbeat(worker);
    Heartbeat(budget_worker);
    scheduler_->Tick();
  }

  for (const auto& [how, job] : jobs) {
    SCOPED_TRACE(how);
    const v1::Job ended = Job(job);
    EXPECT_TRUE(IsFinalState(ended.state())) << v1::Job::State_Name(ended.state());
    absl::StatusOr<v1::CostReport> bill = scheduler_->GetCostReport("t", job);
    ASSERT_OK(bill);
    EXPECT_GT(bill->compute_usd(), 0);
    std::optional<double> metric = AccruedCostMetric(job);
    ASSERT_TRUE(metric.has_value());
    EXPECT_NEAR(*metric, bill->compute_usd(), 1e-9);
    EXPECT_NEAR(*metric, ended.cost().accrued_usd(), 1e-9);
  }
}

// The cost-quality plane comes from the store: each finished job's last eval loss against the
// total of its bill (compute + declared inherited costs), filtered by label and by tenant.
TEST_F(SchedulerTest, ParetoFrontPlacesFinishedJobsByTheirBillAndLastEvalLoss) {
  const std::string worker = Register();
  // Runs a job for `seconds` (= its compute USD here), reporting `eval_loss` if it has one.
  auto run = [&](v1::JobSpec spec, double seconds, std::optional<double> eval_loss,
                 v1::FinishAttemptRequest::Outcome outcome, const std::string& tenant = "t") {
    const std::string id = Submit(std::move(spec), tenant);
    std::optional<v1::Lease> lease = Lease(worker);
    EXPECT_TRUE(lease.has_value());
    if (!lease.has_value()) return id;
    clock_.Advance(absl::Seconds(seconds));
    if (eval_loss.has_value()) {
      v1::ProgressReport report;
      report.set_worker_id(worker);
      report.set_job_id(id);
      report.set_attempt(lease->attempt());
      report.set_lease_token(lease->lease_token());
      report.mutable_update()->set_kind(v1::TrainerUpdate::EVAL);
      report.mutable_update()->set_step(10);
      report.mutable_update()->set_eval_loss(*eval_loss);
      EXPECT_OK(scheduler_->ReportProgress(report));
    }
    EXPECT_OK(Finish(worker, *lease, outcome));
    return id;
  };
  v1::JobSpec sweep = ValidSpec();
  (*sweep.mutable_labels())["sweep"] = "a";
  v1::JobSpec with_data_cost = sweep;
  v1::InheritedCost* data = with_data_cost.add_inherited_costs();
  data->set_kind(v1::InheritedCost::DATA);
  data->set_usd(10);
  data->set_source("invoice 7");

  const std::string cheap = run(sweep, 2, 2.0, v1::FinishAttemptRequest::SUCCEEDED);
  const std::string better = run(sweep, 4, 1.5, v1::FinishAttemptRequest::SUCCEEDED);
  const std::string dominated = run(sweep, 5, 1.8, v1::FinishAttemptRequest::SUCCEEDED);
  // Cheaper in compute than `better`, but its declared data cost counts: $13 in all.
  const std::string data_heavy = run(with_data_cost, 3, 1.0, v1::FinishAttemptRequest::SUCCEEDED);
  const std::string failed = run(sweep, 1, 0.5, v1::FinishAttemptRequest::FAILED);
  const std::string no_eval = run(sweep, 1, std::nullopt, v1::FinishAttemptRequest::SUCCEEDED);
  const std::string unlabelled = run(ValidSpec(), 1, 0.1, v1::FinishAttemptRequest::SUCCEEDED);
  const std::string others =
      run(sweep, 1, 0.1, v1::FinishAttemptRequest::SUCCEEDED, "other-tenant");

  absl::StatusOr<v1::ParetoFront> front = scheduler_->GetParetoFront("t", {{"sweep", "a"}});
  ASSERT_OK(front);
  std::vector<std::string> order;
  std::map<std::string, v1::ParetoPoint> by_job;
  for (const v1::ParetoPoint& point : front->points()) {
    order.push_back(point.job_id());
    by_job[point.job_id()] = point;
  }
  // Cheapest first; the failed job is on the plane (it cost money) but is never optimal.
  EXPECT_THAT(order, ElementsAre(failed, cheap, better, dominated, data_heavy));
  EXPECT_EQ(front->jobs_without_eval_loss(), 1);  // no_eval
  EXPECT_FALSE(front->truncated());
  EXPECT_FALSE(by_job[failed].pareto_optimal());
  EXPECT_TRUE(by_job[cheap].pareto_optimal());
  EXPECT_TRUE(by_job[better].pareto_optimal());
  EXPECT_FALSE(by_job[dominated].pareto_optimal());  // dearer and worse than `better`
  EXPECT_TRUE(by_job[data_heavy].pareto_optimal());  // the lowest loss, at the highest cost
  for (const auto& [job, point] : by_job) {
    SCOPED_TRACE(job);
    absl::StatusOr<v1::CostReport> bill = scheduler_->GetCostReport("t", job);
    ASSERT_OK(bill);
    EXPECT_DOUBLE_EQ(point.total_usd(), bill->total_usd());
    EXPECT_DOUBLE_EQ(point.compute_usd(), bill->compute_usd());
    EXPECT_EQ(point.state(), Job(job).state());
  }
  EXPECT_DOUBLE_EQ(by_job[data_heavy].total_usd(), 13.0);
  EXPECT_DOUBLE_EQ(by_job[better].eval_loss(), 1.5);

  // No label filter: the unlabelled job joins and, cheapest and best, dominates the sweep's.
  front = scheduler_->GetParetoFront("t", {});
  ASSERT_OK(front);
  int optimal = 0;
  for (const v1::ParetoPoint& point : front->points()) {
    EXPECT_NE(point.job_id(), others) << "another tenant's job leaked";
    if (point.pareto_optimal()) {
      ++optimal;
      EXPECT_EQ(point.job_id(), unlabelled);
    }
  }
  EXPECT_EQ(front->points_size(), 6);
  EXPECT_EQ(optimal, 1);
  // Another tenant sees only its own job.
  front = scheduler_->GetParetoFront("other-tenant", {});
  ASSERT_OK(front);
  ASSERT_EQ(front->points_size(), 1);
  EXPECT_EQ(front->points(0).job_id(), others);
  EXPECT_TRUE(front->points(0).pareto_optimal());

  // The ticker puts the same on the per-job gauges of jobs whose series are still kept.
  scheduler_->Tick();
  EXPECT_EQ(JobGaugeValue("tuneledger_job_pareto_optimal", unlabelled), 1.0);
  EXPECT_EQ(JobGaugeValue("tuneledger_job_pareto_optimal", cheap), 0.0);
  EXPECT_EQ(JobGaugeValue("tuneledger_job_pareto_optimal", others), 1.0);
  EXPECT_EQ(JobGaugeValue("tuneledger_job_total_cost_usd", data_heavy), 13.0);
  EXPECT_EQ(JobGaugeValue("tuneledger_job_total_cost_usd", no_eval), std::nullopt);
}

// A routine stop is not a failure: a worker that says goodbye is GONE (not LOST), and the
// attempt it held is PREEMPTED, counted apart, without using up max_attempts.
TEST_F(SchedulerTest, AWorkerThatDeregistersIsGoneAndItsAttemptIsAPreemptionNotAFailure) {
  v1::JobSpec spec = ValidSpec();
  spec.set_max_attempts(1);
  const std::string job = Submit(spec);
  const std::string worker = Register();
  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(2));

  v1::DeregisterWorkerRequest goodbye;
  goodbye.set_worker_id(worker);
  goodbye.set_session_token("not-the-session");
  EXPECT_THAT(scheduler_->DeregisterWorker(goodbye), StatusIs(absl::StatusCode::kPermissionDenied));
  goodbye.set_session_token(sessions_[worker]);
  ASSERT_OK(scheduler_->DeregisterWorker(goodbye));
  ASSERT_OK(scheduler_->DeregisterWorker(goodbye));  // saying it twice is harmless

  absl::StatusOr<std::vector<v1::Worker>> workers = scheduler_->ListWorkers("t");
  ASSERT_OK(workers);
  ASSERT_THAT(*workers, SizeIs(1));
  EXPECT_EQ((*workers)[0].state(), v1::Worker::GONE);
  v1::Job requeued = Job(job);
  EXPECT_EQ(requeued.state(), v1::Job::QUEUED) << "its only allowed failure is still unused";
  EXPECT_EQ(requeued.preempted_attempts(), 1);
  EXPECT_EQ(requeued.failed_attempts(), 0);
  absl::StatusOr<v1::CostReport> report = scheduler_->GetCostReport("t", job);
  ASSERT_OK(report);
  ASSERT_THAT(report->attempts(), SizeIs(1));
  EXPECT_EQ(report->attempts(0).state(), "PREEMPTED");
  EXPECT_NEAR(report->attempts(0).usd(), 2.0, 1e-6);

  // Long after, nothing turns it LOST.
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(absl::Seconds(1));
    scheduler_->Tick();
  }
  workers = scheduler_->ListWorkers("t");
  ASSERT_OK(workers);
  EXPECT_EQ((*workers)[0].state(), v1::Worker::GONE);

  const std::string next = Register();
  lease = Lease(next);
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->attempt(), 2);
}

// A job no registered worker can run says why it waits (message, one WAITING event) and is
// counted by tuneledger_unschedulable_jobs, until a worker that fits comes.
TEST_F(SchedulerTest, AJobNoWorkerCanRunSaysWhyItWaitsAndIsCounted) {
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(4);
  const std::string job = Submit(spec);
  const std::string small = Register(kDollarPerSecond, false, /*gpus=*/1);
  EXPECT_FALSE(Lease(small).has_value());
  scheduler_->Tick();
  scheduler_->Tick();  // a second tick says nothing new
  v1::Job waiting = Job(job);
  EXPECT_EQ(waiting.state(), v1::Job::QUEUED);
  EXPECT_EQ(waiting.message(),
            "waiting: the registered workers have 1 GPUs in all, the job needs 4");
  std::vector<v1::JobEvent> events = Events(job);
  EXPECT_THAT(EventKinds(events), ElementsAre(v1::JobEvent::SUBMITTED, v1::JobEvent::WAITING));
  EXPECT_EQ(events.back().message(), waiting.message());
  EXPECT_EQ(GaugeValue("tuneledger_unschedulable_jobs"), 1);

  const std::string big = Register(kDollarPerSecond, false, /*gpus=*/4);
  scheduler_->Tick();
  EXPECT_EQ(GaugeValue("tuneledger_unschedulable_jobs"), 0);
  std::optional<v1::Lease> lease = Lease(big);
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->job_id(), job);
  EXPECT_EQ(Job(job).message(), "") << "the reason is gone once it runs";
}

// A job of 4 GPUs that no one worker has gathers a gang of two 2-GPU workers: the first to ask
// waits, the second completes it, and each gets a lease of the one attempt naming its ranks;
// rank 0's worker alone gets a lease token. The attempt is billed for 4 GPUs at the members'
// GPU-weighted price.
TEST_F(SchedulerTest, AJobTooBigForOneWorkerIsGangLeasedAcrossWorkersAtOnce) {
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(4);
  const std::string job = Submit(spec);
  const std::string first = RegisterRendezvous("10.0.0.1", 31000, 2 * kDollarPerSecond, 2);
  const std::string second = Register(kDollarPerSecond, false, /*gpus=*/2);

  EXPECT_FALSE(Lease(first).has_value()) << "half a gang is not leased";
  EXPECT_EQ(Job(job).state(), v1::Job::QUEUED);
  std::optional<v1::Lease> second_lease = Lease(second);
  ASSERT_TRUE(second_lease.has_value());
  std::optional<v1::Lease> first_lease = Lease(first);
  ASSERT_TRUE(first_lease.has_value()) << "the waiting member gets its lease at its next poll";

  EXPECT_EQ(first_lease->job_id(), job);
  EXPECT_EQ(second_lease->attempt(), first_lease->attempt());
  EXPECT_THAT(first_lease->ranks(), ElementsAre(0, 1));
  EXPECT_THAT(second_lease->ranks(), ElementsAre(2, 3));
  EXPECT_EQ(first_lease->world_size(), 4);
  EXPECT_EQ(second_lease->world_size(), 4);
  EXPECT_EQ(first_lease->rendezvous(), "10.0.0.1:31000");
  EXPECT_EQ(second_lease->rendezvous(), "10.0.0.1:31000");
  EXPECT_FALSE(first_lease->lease_token().empty());
  EXPECT_TRUE(second_lease->lease_token().empty()) << "rank 0's worker alone reports";

  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING);
  absl::StatusOr<v1::CostReport> bill = scheduler_->GetCostReport("t", job);
  ASSERT_OK(bill);
  ASSERT_EQ(bill->attempts_size(), 1);
  EXPECT_EQ(bill->attempts(0).worker_id(), first);
  EXPECT_EQ(bill->attempts(0).gpus(), 4);
  EXPECT_DOUBLE_EQ(bill->attempts(0).price_per_gpu_hour(), 1.5 * kDollarPerSecond);
  // Both workers' GPUs are held: neither takes another job, and the member's heartbeat may
  // list the job without being told to stop it.
  Submit(ValidSpec());
  EXPECT_FALSE(Lease(second).has_value());
  EXPECT_THAT(Heartbeat(second, {job}).cancel_job_ids(), IsEmpty());
}

// A restarted server knows every worker of a running gang (AttemptPlacement): the other
// member's heartbeat listing the job is not told to stop it, and its GPUs stay held.
TEST_F(SchedulerTest, AGangSurvivesASchedulerRestartWithAllItsWorkers) {
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(4);
  const std::string job = Submit(spec);
  const std::string first = Register(kDollarPerSecond, false, /*gpus=*/2);
  const std::string second = Register(kDollarPerSecond, false, /*gpus=*/2);
  EXPECT_FALSE(Lease(first).has_value());
  ASSERT_TRUE(Lease(second).has_value());
  ASSERT_TRUE(Lease(first).has_value());
  scheduler_->Stop();
  scheduler_.reset();

  StartScheduler();  // same store: a restarted server
  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING);
  EXPECT_THAT(Heartbeat(first, {job}).cancel_job_ids(), IsEmpty());
  EXPECT_THAT(Heartbeat(second, {job}).cancel_job_ids(), IsEmpty()) << "rank 2-3's worker";
  Submit(ValidSpec());
  EXPECT_FALSE(Lease(second).has_value()) << "the gang still holds its GPUs";
  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING);
}

// Rank 0's rendezvous port slot is recorded with the lease: after a restart a new data-parallel
// job on the same worker does not take the port of one still running.
TEST_F(SchedulerTest, ARestartKeepsEachRunningRankZerosRendezvousPort) {
  const std::string worker = RegisterRendezvous("10.0.0.2", 32000, kDollarPerSecond, /*gpus=*/6);
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(2);
  Submit(spec);
  Submit(spec);
  std::optional<v1::Lease> a = Lease(worker);
  std::optional<v1::Lease> c = Lease(worker);
  ASSERT_TRUE(a.has_value() && c.has_value());
  EXPECT_EQ(a->rendezvous(), "10.0.0.2:32000");
  EXPECT_EQ(c->rendezvous(), "10.0.0.2:32001");
  ASSERT_OK(Finish(worker, *a, v1::FinishAttemptRequest::SUCCEEDED));  // slot 0 is free again
  scheduler_->Stop();
  scheduler_.reset();

  StartScheduler();
  Submit(spec);
  std::optional<v1::Lease> b = Lease(worker);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->rendezvous(), "10.0.0.2:32000") << "32001 is still the running job's";
}

// A gang that does not gather in time lets its workers go: a smaller job queued meanwhile then
// runs on them.
TEST_F(SchedulerTest, APartialGangLetsItsWorkersGoAfterTheGangTimeout) {
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(2);
  const std::string big = Submit(spec);
  const std::string lone = Register();
  Register();  // the gang's other worker, which never asks for work
  EXPECT_FALSE(Lease(lone).has_value());
  const std::string small = Submit(ValidSpec());
  EXPECT_FALSE(Lease(lone).has_value()) << "held by the gang";
  clock_.Advance(SchedulerOptions().gang_timeout);
  std::optional<v1::Lease> lease = Lease(lone);
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->job_id(), small);
  EXPECT_EQ(Job(big).state(), v1::Job::QUEUED);
}

// Ranks of one gang share one backend: a GPU worker never joins a gang of CPU workers.
TEST_F(SchedulerTest, AGangGathersOnlyWorkersOfOneAccelerator) {
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(2);
  const std::string job = Submit(spec);
  const std::string cpu = Register();
  v1::WorkerInfo gpu_info = CpuWorker(kDollarPerSecond, false, 1);
  gpu_info.set_accelerator("NVIDIA H200");
  absl::StatusOr<v1::RegisterWorkerResponse> gpu = scheduler_->RegisterWorker(gpu_info, "c");
  ASSERT_OK(gpu);
  sessions_[gpu->worker_id()] = gpu->session_token();
  EXPECT_FALSE(Lease(cpu).has_value());
  EXPECT_FALSE(Lease(gpu->worker_id()).has_value()) << "not in the CPU workers' gang";
  EXPECT_FALSE(Lease(cpu).has_value()) << "one CPU worker's GPU is not enough";
  const std::string other_cpu = Register();
  EXPECT_FALSE(Lease(other_cpu).has_value()) << "gathers a gang of the CPU workers";
  EXPECT_FALSE(Lease(gpu->worker_id()).has_value()) << "which the GPU worker does not join";
  EXPECT_TRUE(Lease(cpu).has_value());
  EXPECT_TRUE(Lease(other_cpu).has_value());
  EXPECT_EQ(Job(job).state(), v1::Job::RUNNING);
}

// Losing any worker of a gang loses the whole attempt: the job is queued again to resume.
TEST_F(SchedulerTest, LosingAGangMemberRequeuesTheWholeAttempt) {
  v1::JobSpec spec = ValidSpec();
  spec.set_gpus(2);
  const std::string job = Submit(spec);
  const std::string first = Register();
  const std::string second = Register();
  EXPECT_FALSE(Lease(first).has_value());
  ASSERT_TRUE(Lease(second).has_value());
  ASSERT_TRUE(Lease(first).has_value());
  ASSERT_EQ(Job(job).state(), v1::Job::RUNNING);
  // Rank 0's worker keeps heartbeating; the other goes silent past the timeout.
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(absl::Seconds(5));
    Heartbeat(first, {job});
    scheduler_->Tick();
  }
  EXPECT_EQ(Job(job).state(), v1::Job::QUEUED);
  absl::StatusOr<v1::CostReport> bill = scheduler_->GetCostReport("t", job);
  ASSERT_OK(bill);
  ASSERT_EQ(bill->attempts_size(), 1);
  EXPECT_EQ(bill->attempts(0).state(), "LOST");
}

// EstimateJob answers what SubmitJob would refuse with the same INVALID_ARGUMENT, naming every
// bad field, and stores nothing either way.
TEST_F(SchedulerTest, EstimateJobIsValidatedAsSubmitIsAndStoresNothing) {
  v1::JobSpec bad = ValidSpec();
  bad.mutable_training()->set_learning_rate(-1);
  bad.mutable_lora()->set_r(0);
  const absl::StatusOr<v1::JobEstimate> refused = scheduler_->EstimateJob("t", bad);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument,
                                AllOf(HasSubstr("spec.training.learning_rate: must be > 0, got -1"),
                                      HasSubstr("spec.lora.r"))));
  EXPECT_EQ(refused.status(), scheduler_->SubmitJob("t", bad).status());

  data_roots_ = {dir_.path()};
  scheduler_.reset();
  StartScheduler();
  const absl::StatusOr<v1::JobEstimate> outside = scheduler_->EstimateJob("t", ValidSpec());
  EXPECT_THAT(outside, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.model_path")));
  EXPECT_EQ(outside.status(), scheduler_->SubmitJob("t", ValidSpec()).status());

  dir_.Write("model/config.json", "{}");
  const std::string train = dir_.Write("train.jsonl", "{\"text\": \"hello\"}\n");
  const absl::StatusOr<v1::JobEstimate> estimate =
      scheduler_->EstimateJob("t", ValidSpec({"model", train}));
  ASSERT_OK(estimate);
  EXPECT_EQ(estimate->total_steps(), 100);
  EXPECT_FALSE(estimate->tokens_basis().empty());
  EXPECT_THAT(scheduler_->ListJobs("t", {}, 0, "")->jobs, IsEmpty()) << "nothing was stored";
}

// SubmitJob records its estimate (CostReport.estimate, estimated_usd, and once the job ends the
// error against the bill); the next estimate of the same shape on that accelerator uses the
// finished job's tokens over its billed lease instead of a cold start. A deduplicated submit
// returns the first job's estimate.
TEST_F(SchedulerTest, SubmitRecordsTheEstimateAndAFinishedJobSetsTheNextOnesRate) {
  const std::string model = std::string(TUNELEDGER_SOURCE_DIR) + "/models/tiny-llama";
  std::string data;
  for (int i = 0; i < 8; ++i) data += "{\"text\": \"abcdefgh\"}\n";  // 10 tokens each
  v1::JobSpec spec = ValidSpec({model, dir_.Write("train.jsonl", data)});
  spec.mutable_training()->set_batch_size(4);
  spec.mutable_training()->set_max_steps(10);  // 5 epochs of 2 batches: 400 tokens
  spec.set_client_request_id("first");
  const std::string worker = Register(kDollarPerSecond);

  v1::JobEstimate recorded;
  absl::StatusOr<EnqueueResult> submitted = scheduler_->SubmitJob("t", spec, &recorded);
  ASSERT_OK(submitted);
  const std::string job = submitted->update.job.id();
  EXPECT_TRUE(recorded.tokens_counted()) << recorded.tokens_basis();
  EXPECT_EQ(recorded.tokens_to_train(), 400);
  ASSERT_THAT(recorded.classes(), SizeIs(1));
  EXPECT_TRUE(recorded.classes(0).cold_start());
  EXPECT_EQ(recorded.classes(0).accelerator(), "cpu");
  const double estimated_usd = recorded.classes(0).usd();
  EXPECT_GT(estimated_usd, 0);

  clock_.Advance(absl::Seconds(1));
  v1::JobEstimate repeated;
  absl::StatusOr<EnqueueResult> again = scheduler_->SubmitJob("t", spec, &repeated);
  ASSERT_OK(again);
  EXPECT_TRUE(again->deduplicated);
  EXPECT_EQ(repeated.SerializeAsString(), recorded.SerializeAsString())
      << "the first job's estimate, not a new one";

  absl::StatusOr<v1::CostReport> queued = scheduler_->GetCostReport("t", job);
  ASSERT_OK(queued);
  EXPECT_EQ(queued->estimate().SerializeAsString(), recorded.SerializeAsString());
  ASSERT_TRUE(queued->has_estimated_usd());
  EXPECT_DOUBLE_EQ(queued->estimated_usd(), estimated_usd);
  EXPECT_FALSE(queued->has_estimate_error()) << "no error before the bill is final";

  std::optional<v1::Lease> lease = Lease(worker);
  ASSERT_TRUE(lease.has_value());
  clock_.Advance(absl::Seconds(8));
  v1::ProgressReport report;
  report.set_worker_id(worker);
  report.set_job_id(job);
  report.set_attempt(lease->attempt());
  report.set_lease_token(lease->lease_token());
  report.mutable_update()->set_kind(v1::TrainerUpdate::PROGRESS);
  report.mutable_update()->set_step(10);
  report.mutable_update()->set_total_steps(10);
  report.mutable_update()->set_tokens(400);
  ASSERT_OK(scheduler_->ReportProgress(report));
  ASSERT_OK(Finish(worker, *lease, v1::FinishAttemptRequest::SUCCEEDED));
  absl::StatusOr<v1::CostReport> finished = scheduler_->GetCostReport("t", job);
  ASSERT_OK(finished);
  EXPECT_DOUBLE_EQ(finished->compute_usd(), 8.0) << "8 s at $1 per second";
  ASSERT_TRUE(finished->has_estimate_error());
  EXPECT_NEAR(finished->estimate_error(), (8.0 - estimated_usd) / estimated_usd, 1e-9);

  spec.clear_client_request_id();
  absl::StatusOr<v1::JobEstimate> next = scheduler_->EstimateJob("t", spec);
  ASSERT_OK(next);
  ASSERT_THAT(next->classes(), SizeIs(1));
  EXPECT_FALSE(next->classes(0).cold_start());
  EXPECT_EQ(next->classes(0).past_jobs(), 1);
  EXPECT_DOUBLE_EQ(next->classes(0).tokens_per_second(), 50) << "400 tokens in 8 billed s";
  EXPECT_DOUBLE_EQ(next->classes(0).usd(), 8.0) << "a repeat is estimated at the first's bill";
}

// The pre-flight estimate keeps its view of the workers between submits; a worker that
// registers or is lost since the last estimate is in or out of the next one.
TEST_F(SchedulerTest, EstimatesPriceTheWorkersActiveNowAfterRegistrationsAndLosses) {
  const std::string cheap = Register(kDollarPerSecond);
  auto prices = [&]() {
    std::vector<double> out;
    absl::StatusOr<v1::JobEstimate> estimate = scheduler_->EstimateJob("t", ValidSpec());
    EXPECT_OK(estimate);
    if (!estimate.ok()) return out;
    for (const v1::WorkerClassEstimate& priced : estimate->classes()) {
      out.push_back(priced.price_per_gpu_hour());
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_THAT(prices(), ElementsAre(kDollarPerSecond));
  const std::string dear = Register(2 * kDollarPerSecond);
  EXPECT_THAT(prices(), ElementsAre(kDollarPerSecond, 2 * kDollarPerSecond));
  clock_.Advance(absl::Seconds(16));  // past the heartbeat timeout of both
  Heartbeat(cheap);
  scheduler_->Tick();
  ASSERT_EQ(store_->GetWorker(dear)->state(), v1::Worker::LOST);
  EXPECT_THAT(prices(), ElementsAre(kDollarPerSecond));
}

// The ticker bills every running attempt on the server's clock; the bills are queued together
// and share one commit (one fsync), not one each with the scheduler's lock held.
TEST_F(SchedulerTest, ATickBillsEveryRunningAttemptInOneCommit) {
  constexpr int kJobs = 6;
  std::vector<std::string> jobs;
  for (int i = 0; i < kJobs; ++i) {
    const std::string worker = Register(kDollarPerSecond);
    jobs.push_back(Submit(ValidSpec()));
    ASSERT_TRUE(Lease(worker).has_value());
  }
  clock_.Advance(absl::Seconds(3));
  const int64_t before = store_->WriteBatchesCommitted();
  scheduler_->Tick();
  EXPECT_EQ(store_->WriteBatchesCommitted() - before, 1);
  for (const std::string& job : jobs) {
    EXPECT_DOUBLE_EQ(Job(job).cost().accrued_usd(), 3.0) << "job " << job << ": 3 s at $1/s";
    EXPECT_THAT(AccruedCostMetric(job), Optional(DoubleEq(3.0))) << "job " << job;
  }
}

}  // namespace
}  // namespace tuneledger
