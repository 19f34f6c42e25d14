// The cost card: a job's whole bill as Markdown, written beside its adapter as
// <adapter_dir>/COST.md (by the worker that wrote the adapter, from FinishAttemptResponse) and
// returned in CostReport.card_markdown. It follows the disclosure the project's cost model asks
// for (README.md "Job lifecycle and cost"): the base model's source and licence, every attempt
// (failed, preempted and lost ones included, with their data-selection scoring and preemption
// waste), the estimate made at submit against the bill, the spot saving, each declared inherited
// cost with its source, the totals and the compute's share of them, and what was not declared.
//
// Pure function of its arguments; every figure comes from the CostReport (cost_model.h), so the
// card and `tunectl cost` never disagree.
#ifndef TUNELEDGER_SERVER_CORE_COST_CARD_H_
#define TUNELEDGER_SERVER_CORE_COST_CARD_H_

#include <string>

#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

// `report` is the job's CostReport with everything but card_markdown filled in.
std::string RenderCostCard(const v1::Job& job, const v1::CostReport& report);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_COST_CARD_H_
