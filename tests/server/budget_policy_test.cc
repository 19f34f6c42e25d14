#include "server/core/budget_policy.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

v1::Budget MakeBudget(double usd, v1::Budget::Policy policy = v1::Budget::CANCEL) {
  v1::Budget budget;
  budget.set_usd(usd);
  for (double threshold : {0.5, 0.8, 1.0}) budget.add_thresholds(threshold);
  budget.set_policy(policy);
  return budget;
}

BudgetObservation Spent(double accrued) {
  BudgetObservation observation;
  observation.accrued_usd = accrued;
  observation.projected_usd = accrued;
  return observation;
}

TEST(BudgetPolicyTest, EachThresholdIsCrossedExactlyOnce) {
  const v1::Budget budget = MakeBudget(10.0);
  BudgetState state;
  std::vector<double> recorded;
  int cancels = 0;
  // A job spending $0.25 per report from $0 to $12.
  for (int report = 0; report <= 48; ++report) {
    const BudgetDecision decision = EvaluateBudget(budget, state, Spent(report * 0.25));
    recorded.insert(recorded.end(), decision.crossed_thresholds.begin(),
                    decision.crossed_thresholds.end());
    if (decision.cancel) ++cancels;
    state = decision.next_state;  // what the caller persists
  }
  EXPECT_THAT(recorded, ElementsAre(0.5, 0.8, 1.0));
  EXPECT_EQ(state.thresholds_crossed, 3);
  EXPECT_GT(cancels, 0);
}

TEST(BudgetPolicyTest, OneReportCanCrossSeveralThresholdsInOrder) {
  const BudgetDecision decision = EvaluateBudget(MakeBudget(10.0), {}, Spent(8.5));
  EXPECT_THAT(decision.crossed_thresholds, ElementsAre(0.5, 0.8));
  EXPECT_EQ(decision.next_state.thresholds_crossed, 2);
  EXPECT_FALSE(decision.cancel);
}

TEST(BudgetPolicyTest, CancelPolicyCancelsAtOneHundredPercent) {
  EXPECT_FALSE(EvaluateBudget(MakeBudget(10.0), {}, Spent(9.99)).cancel);
  const BudgetDecision decision = EvaluateBudget(MakeBudget(10.0), {}, Spent(10.0));
  EXPECT_TRUE(decision.cancel);
  EXPECT_THAT(decision.crossed_thresholds, ElementsAre(0.5, 0.8, 1.0));
}

TEST(BudgetPolicyTest, AlertOnlyRecordsButNeverCancels) {
  const v1::Budget budget = MakeBudget(10.0, v1::Budget::ALERT_ONLY);
  const BudgetDecision decision = EvaluateBudget(budget, {}, Spent(50.0));
  EXPECT_THAT(decision.crossed_thresholds, ElementsAre(0.5, 0.8, 1.0));
  EXPECT_FALSE(decision.cancel);
}

TEST(BudgetPolicyTest, NoBudgetMeansNoEventsAndNoCancel) {
  v1::Budget none;  // usd unset
  none.add_thresholds(0.5);
  BudgetObservation observation = Spent(1e6);
  observation.projection_known = true;
  observation.progress_ratio = 0.5;
  observation.projected_usd = 2e6;
  const BudgetDecision decision = EvaluateBudget(none, {}, observation);
  EXPECT_THAT(decision.crossed_thresholds, IsEmpty());
  EXPECT_FALSE(decision.raise_projected_overrun);
  EXPECT_FALSE(decision.cancel);
}

TEST(BudgetPolicyTest, ProjectedOverrunIsRaisedOnceAndOnlyAfterMeaningfulProgress) {
  const v1::Budget budget = MakeBudget(10.0);
  BudgetObservation observation = Spent(1.0);
  observation.projected_usd = 25.0;
  observation.projection_known = true;

  observation.progress_ratio = 0.05;  // too early: start-up noise
  EXPECT_FALSE(EvaluateBudget(budget, {}, observation).raise_projected_overrun);

  observation.progress_ratio = 0.2;
  observation.projection_known = false;  // no measured rate yet
  EXPECT_FALSE(EvaluateBudget(budget, {}, observation).raise_projected_overrun);

  observation.projection_known = true;
  const BudgetDecision first = EvaluateBudget(budget, {}, observation);
  EXPECT_TRUE(first.raise_projected_overrun);
  EXPECT_TRUE(first.next_state.overrun_raised);
  EXPECT_FALSE(EvaluateBudget(budget, first.next_state, observation).raise_projected_overrun)
      << "raised once";

  observation.projected_usd = 9.0;  // on track: nothing to raise
  EXPECT_FALSE(EvaluateBudget(budget, {}, observation).raise_projected_overrun);
}

TEST(BudgetPolicyTest, ALongJobIsWarnedOnceItsRateIsMeasuredOverEnoughSteps) {
  const v1::Budget budget = MakeBudget(10.0);
  BudgetObservation observation = Spent(1.0);
  observation.projected_usd = 500.0;
  observation.projection_known = true;
  observation.progress_ratio = 0.001;  // 100,000-step job: 10% would come far too late

  observation.steps_measured = kMinStepsForProjection - 1;
  EXPECT_FALSE(EvaluateBudget(budget, {}, observation).raise_projected_overrun);
  observation.steps_measured = kMinStepsForProjection;
  EXPECT_TRUE(EvaluateBudget(budget, {}, observation).raise_projected_overrun);
}

}  // namespace
}  // namespace tuneledger
