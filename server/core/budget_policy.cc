#include "server/core/budget_policy.h"

namespace tuneledger {

BudgetDecision EvaluateBudget(const v1::Budget& budget, const BudgetState& state,
                              const BudgetObservation& observation) {
  BudgetDecision decision;
  decision.next_state = state;
  if (!budget.has_usd() || !(budget.usd() > 0)) return decision;
  const double usd = budget.usd();

  int crossed = state.thresholds_crossed;
  while (crossed < budget.thresholds_size() &&
         observation.accrued_usd >= budget.thresholds(crossed) * usd) {
    decision.crossed_thresholds.push_back(budget.thresholds(crossed));
    ++crossed;
  }
  decision.next_state.thresholds_crossed = crossed;

  const bool over_budget = observation.accrued_usd >= usd;
  const bool projection_meaningful =
      observation.projection_known && (observation.progress_ratio >= kMinProgressForProjection ||
                                       observation.steps_measured >= kMinStepsForProjection);
  if (!state.overrun_raised && !over_budget && projection_meaningful &&
      observation.projected_usd > usd) {
    decision.raise_projected_overrun = true;
    decision.next_state.overrun_raised = true;
  }

  const bool alert_only = budget.policy() == v1::Budget::ALERT_ONLY;
  decision.cancel = over_budget && !alert_only;
  return decision;
}

}  // namespace tuneledger
