// The budget policy (README.md "Job lifecycle and cost"): pure decisions, no state of its own.
//
// Given a job's budget (defaults filled), what it has already recorded (how many thresholds were
// crossed, whether a projected overrun was raised) and its new cost, EvaluateBudget() says which
// crossings to record now and whether to cancel. The caller persists the returned crossings
// together with the new state, so each threshold is recorded exactly once:
//   - no budget (budget.usd unset): never any crossing, overrun or cancel;
//   - thresholds are fractions of budget.usd, crossed when accrued >= fraction x usd, in order;
//     several may be crossed by one report;
//   - policy CANCEL (the default) cancels once accrued >= usd (100%); ALERT_ONLY never cancels;
//   - a projected overrun (projected > usd) is raised once, early, and only after enough of
//     the job has run for the projection to mean something (a measured step rate, over either
//     kMinProgressForProjection of the steps or kMinStepsForProjection steps, so that a long job
//     is warned long before its budget runs out), and never once accrued alone is past it.
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_SERVER_CORE_BUDGET_POLICY_H_
#define TUNELEDGER_SERVER_CORE_BUDGET_POLICY_H_

#include <vector>

#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

// Below this fraction of the steps a projection is mostly start-up noise (model loading).
inline constexpr double kMinProgressForProjection = 0.1;
// ... or, for long jobs, once the step rate was measured over this many steps.
inline constexpr int kMinStepsForProjection = 20;

// What a job has already recorded (persisted with the job).
struct BudgetState {
  int thresholds_crossed = 0;  // a prefix of budget.thresholds
  bool overrun_raised = false;
};

struct BudgetObservation {
  double accrued_usd = 0;
  double projected_usd = 0;
  double progress_ratio = 0;      // step / total_steps
  bool projection_known = false;  // a step rate has been measured in this attempt
  int steps_measured = 0;         // steps the step rate was measured over
};

struct BudgetDecision {
  std::vector<double> crossed_thresholds;  // to record now, in increasing order
  bool raise_projected_overrun = false;
  bool cancel = false;
  BudgetState next_state;  // the state after recording this decision

  // Whether there is anything to record or do.
  bool Acts() const { return cancel || raise_projected_overrun || !crossed_thresholds.empty(); }
};

BudgetDecision EvaluateBudget(const v1::Budget& budget, const BudgetState& state,
                              const BudgetObservation& observation);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_BUDGET_POLICY_H_
