#include "server/core/cost_model.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger {
namespace {

using ::testing::Contains;
using ::testing::DoubleNear;
using ::testing::HasSubstr;

constexpr double kTolerance = 1e-12;

v1::AttemptCost Attempt(int number, double price, int gpus, bool spot, absl::Duration lease) {
  v1::AttemptCost attempt;
  attempt.set_attempt(number);
  attempt.set_price_per_gpu_hour(price);
  attempt.set_gpus(gpus);
  attempt.set_spot(spot);
  attempt.set_state("SUCCEEDED");
  BillAttempt(lease, attempt);
  return attempt;
}

TEST(CostModelTest, AttemptCostIsPriceTimesGpusTimesLeaseHours) {
  // $2.50/GPU-hour x 4 GPUs x 90 minutes = $15.
  EXPECT_THAT(AttemptCostUsd({2.5, 4, false}, absl::Minutes(90)), DoubleNear(15.0, kTolerance));
  EXPECT_THAT(GpuHours(4, absl::Minutes(90)), DoubleNear(6.0, kTolerance));
  EXPECT_THAT(RateUsdPerHour({2.5, 4, false}), DoubleNear(10.0, kTolerance));
  // One second on one $3.60 GPU is a tenth of a cent.
  EXPECT_THAT(AttemptCostUsd({3.6, 1, false}, absl::Seconds(1)), DoubleNear(0.001, kTolerance));
  EXPECT_EQ(AttemptCostUsd({3.6, 1, false}, -absl::Seconds(5)), 0) << "no negative leases";
}

TEST(CostModelTest, AnAttemptLineIsBilledFromItsServerLease) {
  const v1::AttemptCost line = Attempt(1, 3.6, 2, /*spot=*/false, absl::Seconds(100));
  EXPECT_THAT(line.seconds(), DoubleNear(100, kTolerance));
  EXPECT_THAT(line.gpu_hours(), DoubleNear(200.0 / 3600, kTolerance));
  EXPECT_THAT(line.usd(), DoubleNear(0.2, kTolerance));
}

TEST(CostModelTest, JobCostSumsSeveralAttemptsAndSplitsSpot) {
  const std::vector<v1::AttemptCost> attempts = {
      Attempt(1, 1.0, 2, /*spot=*/true, absl::Hours(1)),     // lost spot attempt: $2
      Attempt(2, 1.0, 2, /*spot=*/true, absl::Minutes(30)),  // preempted: $1
      Attempt(3, 3.0, 1, /*spot=*/false, absl::Hours(2)),    // on-demand: $6
  };
  const ComputeTotals totals = SumAttempts(attempts);
  EXPECT_THAT(totals.usd, DoubleNear(9.0, kTolerance));
  EXPECT_THAT(totals.gpu_hours, DoubleNear(2.0 + 1.0 + 2.0, kTolerance));
  EXPECT_THAT(totals.spot_usd, DoubleNear(3.0, kTolerance));
  EXPECT_THAT(totals.on_demand_usd, DoubleNear(6.0, kTolerance));
}

// Spot accounting: each attempt's GPU-hours at its worker's declared on-demand price (its own
// price when none was declared), the saving against that, and the preemption waste.
TEST(CostModelTest, ReportStatesTheSpotSavingAndThePreemptionWaste) {
  v1::AttemptCost lost = Attempt(1, 1.0, 2, /*spot=*/true, absl::Hours(1));  // $2
  lost.set_state("LOST");
  lost.set_on_demand_price_per_gpu_hour(3.0);
  lost.set_wasted_seconds(1800);  // half of it redone: 2 GPUs x 0.5 h x $1
  lost.set_wasted_usd(1.0);
  v1::AttemptCost resumed = Attempt(2, 1.0, 2, /*spot=*/true, absl::Hours(2));  // $4
  resumed.set_on_demand_price_per_gpu_hour(3.0);
  const v1::AttemptCost on_demand = Attempt(3, 5.0, 1, /*spot=*/false, absl::Hours(1));  // $5
  v1::Job job;
  job.set_id("4");
  job.set_state(v1::Job::SUCCEEDED);
  const v1::CostReport report = BuildCostReport(job, {lost, resumed, on_demand});
  EXPECT_THAT(report.compute_usd(), DoubleNear(11.0, kTolerance));
  // (2 + 4) GPU-hours at $3 on demand, plus the on-demand attempt's own $5.
  EXPECT_THAT(report.on_demand_equivalent_usd(), DoubleNear(18.0 + 5.0, kTolerance));
  EXPECT_THAT(report.spot_saving_usd(), DoubleNear(23.0 - 11.0, kTolerance));
  EXPECT_THAT(report.preemption_waste_usd(), DoubleNear(1.0, kTolerance));
  EXPECT_THAT(report.preemption_waste_gpu_hours(), DoubleNear(1.0, kTolerance));
  EXPECT_THAT(report.notes(), Contains(HasSubstr("spot saved $12.0000")));
  EXPECT_THAT(report.notes(), Contains(HasSubstr("Preemption waste: $1.0000 (1.0000 GPU-hours)")));

  // Without declared on-demand prices, or without preemptions, neither line appears.
  const v1::CostReport plain = BuildCostReport(job, {on_demand});
  EXPECT_EQ(plain.spot_saving_usd(), 0);
  EXPECT_EQ(plain.preemption_waste_usd(), 0);
  EXPECT_THAT(plain.notes(), ::testing::Not(Contains(HasSubstr("spot saved"))));
  EXPECT_THAT(plain.notes(), ::testing::Not(Contains(HasSubstr("Preemption waste"))));
}

TEST(CostModelTest, ProjectionUsesTheAttemptsOwnStepRate) {
  StepRateEstimator rate;
  const absl::Time start = absl::FromUnixSeconds(1000);
  EXPECT_FALSE(rate.StepsPerSecond().has_value());
  rate.Observe(start, 40);  // a resumed attempt starts at step 40
  EXPECT_FALSE(rate.StepsPerSecond().has_value()) << "one observation is no rate";
  rate.Observe(start + absl::Seconds(30), 70);
  ASSERT_TRUE(rate.StepsPerSecond().has_value());
  EXPECT_THAT(*rate.StepsPerSecond(), DoubleNear(1.0, kTolerance));

  const std::optional<absl::Duration> remaining = RemainingTime(70, 100, rate.StepsPerSecond());
  ASSERT_TRUE(remaining.has_value());
  EXPECT_EQ(*remaining, absl::Seconds(30));
  // $36/hour for 30 more seconds = $0.30 on top of $1.
  EXPECT_THAT(ProjectedCostUsd(1.0, 36.0, remaining), DoubleNear(1.3, kTolerance));
  EXPECT_EQ(ProjectedCostUsd(1.0, 36.0, std::nullopt), 1.0) << "unknown remaining: accrued";
  EXPECT_FALSE(RemainingTime(70, 0, 1.0).has_value()) << "no total steps";
}

TEST(CostModelTest, ReportStatesComputeInheritedTotalsShareAndOvershoot) {
  v1::Job job;
  job.set_id("7");
  job.set_state(v1::Job::CANCELLED);
  job.mutable_spec()->mutable_budget()->set_usd(5.0);
  v1::InheritedCost* pretraining = job.mutable_spec()->add_inherited_costs();
  pretraining->set_kind(v1::InheritedCost::BASE_MODEL_PRETRAINING);
  pretraining->set_usd(990.0);
  pretraining->set_source("model card: 1e21 FLOPs at $1/PFLOP-hour");
  v1::InheritedCost* data = job.mutable_spec()->add_inherited_costs();
  data->set_kind(v1::InheritedCost::DATA);
  data->set_usd(4.0);
  data->set_source("annotation invoice #12");

  const std::vector<v1::AttemptCost> attempts = {
      Attempt(1, 2.0, 1, /*spot=*/true, absl::Hours(1)),
      Attempt(2, 4.0, 1, /*spot=*/false, absl::Hours(1)),
  };
  const v1::CostReport report = BuildCostReport(job, attempts);
  EXPECT_EQ(report.job_id(), "7");
  EXPECT_EQ(report.attempts_size(), 2);
  EXPECT_THAT(report.compute_usd(), DoubleNear(6.0, kTolerance));
  EXPECT_THAT(report.compute_gpu_hours(), DoubleNear(2.0, kTolerance));
  EXPECT_THAT(report.spot_usd(), DoubleNear(2.0, kTolerance));
  EXPECT_THAT(report.on_demand_usd(), DoubleNear(4.0, kTolerance));
  EXPECT_THAT(report.inherited_usd(), DoubleNear(994.0, kTolerance));
  EXPECT_THAT(report.total_usd(), DoubleNear(1000.0, kTolerance));
  EXPECT_THAT(report.compute_share(), DoubleNear(0.006, kTolerance));
  EXPECT_THAT(report.budget_usd(), DoubleNear(5.0, kTolerance));
  EXPECT_THAT(report.overshoot_usd(), DoubleNear(1.0, kTolerance));
  EXPECT_THAT(report.projected_usd(), DoubleNear(6.0, kTolerance)) << "finished: = compute";
  ASSERT_EQ(report.inherited_size(), 2);
  EXPECT_EQ(report.inherited(0).source(), "model card: 1e21 FLOPs at $1/PFLOP-hour");
  EXPECT_THAT(report.notes(), Contains(HasSubstr("source: annotation invoice #12")));
  EXPECT_THAT(report.notes(), Contains(HasSubstr("the cost of this model, with what it inherits")));
  EXPECT_THAT(report.notes(), Contains(HasSubstr("exceeded the budget")));
}

TEST(CostModelTest, ReportWithoutInheritedCostsSaysSoAndHasFullComputeShare) {
  v1::Job job;
  job.set_id("8");
  job.set_state(v1::Job::RUNNING);
  job.mutable_cost()->set_projected_usd(3.0);
  const v1::CostReport report = BuildCostReport(job, {Attempt(1, 1.0, 1, false, absl::Hours(1))});
  EXPECT_THAT(report.compute_share(), DoubleNear(1.0, kTolerance));
  EXPECT_FALSE(report.has_budget_usd());
  EXPECT_EQ(report.overshoot_usd(), 0);
  EXPECT_THAT(report.projected_usd(), DoubleNear(3.0, kTolerance)) << "running: projection";
  EXPECT_THAT(report.notes(), Contains(HasSubstr("No inherited costs were declared")));
  EXPECT_EQ(BuildCostReport(job, {}).compute_share(), 1.0) << "nothing spent at all";
}

}  // namespace
}  // namespace tuneledger
