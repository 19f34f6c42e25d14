// Cost against quality across finished jobs: which ones no other job beats on both axes.
//
// A job is Pareto-optimal when it SUCCEEDED (only such a job left an adapter to use), its eval
// loss is finite, and no other such job is at least as cheap and at least as good with one of
// the two strictly better. Two jobs with the same cost and the same loss are both optimal.
// Jobs that failed or were cancelled stay on the plane (they cost money) but are never optimal.
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_SERVER_CORE_PARETO_FRONT_H_
#define TUNELEDGER_SERVER_CORE_PARETO_FRONT_H_

#include <vector>

#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

// Sorts `points` by total_usd ascending, then eval_loss (NaN last), then job id, and sets each
// one's pareto_optimal.
void MarkParetoFront(std::vector<v1::ParetoPoint>& points);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_PARETO_FRONT_H_
