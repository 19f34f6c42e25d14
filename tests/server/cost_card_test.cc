#include "server/core/cost_card.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/cost_model.h"

namespace tuneledger {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::AttemptCost Attempt(int number, const std::string& state, double price, bool spot,
                        absl::Duration lease) {
  v1::AttemptCost attempt;
  attempt.set_attempt(number);
  attempt.set_worker_id("w-" + std::to_string(number));
  attempt.set_state(state);
  attempt.set_gpus(1);
  attempt.set_price_per_gpu_hour(price);
  attempt.set_spot(spot);
  BillAttempt(lease, attempt);
  return attempt;
}

v1::Job FinishedJob() {
  v1::Job job;
  job.set_id("42");
  job.set_tenant("team-a");
  job.set_state(v1::Job::SUCCEEDED);
  job.set_adapter_path("/w/jobs/42/attempt-3/adapter");
  job.mutable_spec()->set_name("cards | v2");
  job.mutable_spec()->set_model_path("/models/tiny-llama");
  v1::InheritedCost* pretraining = job.mutable_spec()->add_inherited_costs();
  pretraining->set_kind(v1::InheritedCost::BASE_MODEL_PRETRAINING);
  pretraining->set_usd(120);
  pretraining->set_source("pretrain_summary.json");
  return job;
}

// The card states every attempt (the preempted and the failed ones too), the scoring and the
// waste, each declared cost with its source, the totals and the compute's share, the licence, and
// what was not declared; all from the report, so card and report agree.
TEST(CostCardTest, TheCardDisclosesEveryAttemptEveryDeclaredCostAndWhatWasNotDeclared) {
  v1::AttemptCost preempted = Attempt(1, "PREEMPTED", 3.6, /*spot=*/true, absl::Seconds(100));
  preempted.set_wasted_seconds(40);
  preempted.set_wasted_usd(0.04);
  preempted.set_scoring_seconds(10);
  preempted.set_scoring_usd(0.01);
  const std::vector<v1::AttemptCost> attempts = {
      preempted, Attempt(2, "FAILED", 3.6, /*spot=*/true, absl::Seconds(50)),
      Attempt(3, "SUCCEEDED", 3.6, /*spot=*/true, absl::Seconds(200))};
  v1::BaseModel model;
  model.set_path("/models/tiny-llama");
  model.set_source("tuneledger tiny-llama");
  model.set_license("apache-2.0");
  model.set_license_origin("README.md");
  v1::JobEstimate estimate;
  estimate.set_tokens_to_train(1000);
  estimate.set_total_steps(10);
  estimate.set_tokens_basis("counted");
  v1::WorkerClassEstimate* on_spot = estimate.add_classes();
  on_spot->set_accelerator("cpu");
  on_spot->set_price_per_gpu_hour(3.6);
  on_spot->set_spot(true);
  on_spot->set_gpus(1);
  on_spot->set_usd(0.25);
  const v1::CostReport report = BuildCostReport(FinishedJob(), attempts, estimate, model);
  const std::string& card = report.card_markdown();

  EXPECT_EQ(card, RenderCostCard(FinishedJob(), report));
  EXPECT_THAT(card, HasSubstr("# Cost card: cards \\| v2"))
      << "a '|' in a name cannot break a table";
  EXPECT_THAT(card, HasSubstr("| Base model | tuneledger tiny-llama |"));
  EXPECT_THAT(card, HasSubstr("| Base model licence | apache-2.0 (from README.md) |"));
  for (const char* line :
       {"| 1 | w-1 | PREEMPTED |", "| 2 | w-2 | FAILED |", "| 3 | w-3 | SUCCEEDED |"}) {
    EXPECT_THAT(card, HasSubstr(line));
  }
  // 350 s at $3.60 an hour: $0.35 of compute, $120 inherited.
  EXPECT_THAT(card, HasSubstr("| Compute, 3 attempts (0.0972 GPU-hours) | $0.3500 |"));
  EXPECT_THAT(card,
              HasSubstr("| - of which data-selection scoring (0.0028 GPU-hours) | $0.0100 |"));
  EXPECT_THAT(card, HasSubstr("| - of which preemption waste (0.0111 GPU-hours) | $0.0400 |"));
  EXPECT_THAT(card, HasSubstr("| Inherited: base-model pre-training | $120.0000 | declared by the "
                              "submitter: pretrain_summary.json |"));
  EXPECT_THAT(card, HasSubstr("| **Total** | **$120.3500** |"));
  EXPECT_THAT(card, HasSubstr("Compute is 0.29% of the total."));
  EXPECT_THAT(card, HasSubstr("Not declared, so not in the total: data, labour."));
  // Estimated $0.25, billed $0.35: 40% over.
  EXPECT_THAT(card, HasSubstr("Estimated at submit: $0.2500"));
  EXPECT_THAT(card, HasSubstr("+40.0% off the estimate"));
  EXPECT_THAT(card, HasSubstr("/w/jobs/42/attempt-3/adapter"));
}

TEST(CostCardTest, AnUnknownLicenceAndAMissingEstimateAreSaidSo) {
  v1::Job job = FinishedJob();
  job.mutable_spec()->clear_inherited_costs();
  v1::BaseModel model;
  model.set_path("/models/unnamed");
  model.set_source("unnamed");
  model.set_license("unknown");
  const v1::CostReport report = BuildCostReport(
      job, {Attempt(1, "SUCCEEDED", 1, false, absl::Seconds(36))}, v1::JobEstimate(), model);
  EXPECT_THAT(report.card_markdown(),
              HasSubstr("| Base model licence | unknown (no README front matter or LICENSE file "
                        "said) |"));
  EXPECT_THAT(report.card_markdown(), HasSubstr("No estimate was recorded at submit."));
  EXPECT_THAT(report.card_markdown(),
              HasSubstr("Not declared, so not in the total: base-model pre-training, data, "
                        "labour."));
  EXPECT_THAT(report.card_markdown(), Not(HasSubstr("scoring (")));
  EXPECT_FALSE(report.has_estimated_usd());
  EXPECT_FALSE(report.has_estimate_error());
}

// The bill is compared with the class it ran on; a running job has an estimate but no error.
TEST(CostCardTest, TheEstimateErrorIsAgainstTheClassOfTheNewestAttemptAndOnlyOnceFinal) {
  v1::JobEstimate estimate;
  for (const auto& [price, usd] : {std::pair{1.0, 0.5}, std::pair{3.6, 2.0}}) {
    v1::WorkerClassEstimate* worker_class = estimate.add_classes();
    worker_class->set_price_per_gpu_hour(price);
    worker_class->set_gpus(1);
    worker_class->set_usd(usd);
  }
  const std::vector<v1::AttemptCost> attempts = {
      Attempt(1, "SUCCEEDED", 3.6, false, absl::Seconds(1500))};  // $1.50
  v1::Job job = FinishedJob();
  v1::CostReport report = BuildCostReport(job, attempts, estimate, v1::BaseModel());
  EXPECT_DOUBLE_EQ(report.estimated_usd(), 2.0);
  EXPECT_DOUBLE_EQ(report.estimate_error(), -0.25);
  job.set_state(v1::Job::RUNNING);
  report = BuildCostReport(job, attempts, estimate, v1::BaseModel());
  EXPECT_DOUBLE_EQ(report.estimated_usd(), 2.0);
  EXPECT_FALSE(report.has_estimate_error());
  EXPECT_THAT(report.card_markdown(), HasSubstr("(the bill is not final)"));
  // Not run yet: the cheapest class.
  report = BuildCostReport(job, {}, estimate, v1::BaseModel());
  EXPECT_DOUBLE_EQ(report.estimated_usd(), 0.5);
}

}  // namespace
}  // namespace tuneledger
