#include "server/core/pareto_front.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

namespace tuneledger {
namespace {

bool IsCandidate(const v1::ParetoPoint& point) {
  return point.state() == v1::Job::SUCCEEDED && std::isfinite(point.eval_loss()) &&
         std::isfinite(point.total_usd());
}

// NaN sorts after every number, so the order is total.
double LossKey(const v1::ParetoPoint& point) {
  return std::isnan(point.eval_loss()) ? std::numeric_limits<double>::infinity()
                                       : point.eval_loss();
}

}  // namespace

void MarkParetoFront(std::vector<v1::ParetoPoint>& points) {
  std::sort(points.begin(), points.end(), [](const v1::ParetoPoint& a, const v1::ParetoPoint& b) {
    return std::make_tuple(a.total_usd(), LossKey(a), std::isnan(a.eval_loss()), a.job_id()) <
           std::make_tuple(b.total_usd(), LossKey(b), std::isnan(b.eval_loss()), b.job_id());
  });
  // Sweep by cost: a candidate is optimal when its loss is below every cheaper candidate's, or
  // ties exactly the optimal point that set the best loss (same cost, same loss).
  bool have_best = false;
  double best_loss = 0;
  double best_cost = 0;
  for (v1::ParetoPoint& point : points) {
    point.set_pareto_optimal(false);
    if (!IsCandidate(point)) continue;
    const bool ties_best =
        have_best && point.eval_loss() == best_loss && point.total_usd() == best_cost;
    if (!have_best || point.eval_loss() < best_loss || ties_best) {
      point.set_pareto_optimal(true);
      have_best = true;
      best_loss = point.eval_loss();
      best_cost = point.total_usd();
    }
  }
}

}  // namespace tuneledger
