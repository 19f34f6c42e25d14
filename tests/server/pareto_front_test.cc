#include "server/core/pareto_front.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger {
namespace {

using ::testing::ElementsAre;

v1::ParetoPoint Point(const std::string& id, double usd, double loss,
                      v1::Job::State state = v1::Job::SUCCEEDED) {
  v1::ParetoPoint point;
  point.set_job_id(id);
  point.set_total_usd(usd);
  point.set_eval_loss(loss);
  point.set_state(state);
  point.set_pareto_optimal(true);  // MarkParetoFront must set every flag, not only the true ones
  return point;
}

// Ids of the points in their order, "*" appended to the optimal ones.
std::vector<std::string> Marked(std::vector<v1::ParetoPoint> points) {
  MarkParetoFront(points);
  std::vector<std::string> out;
  for (const v1::ParetoPoint& point : points) {
    out.push_back(point.job_id() + (point.pareto_optimal() ? "*" : ""));
  }
  return out;
}

TEST(ParetoFrontTest, AJobBeatenOnBothAxesIsNotOptimal) {
  EXPECT_THAT(
      Marked({Point("dear-and-worse", 5, 2.0), Point("cheap", 1, 3.0), Point("mid", 2, 1.5)}),
      ElementsAre("cheap*", "mid*", "dear-and-worse"));
}

TEST(ParetoFrontTest, BeatenOnOneAxisAndTiedOnTheOtherIsNotOptimal) {
  EXPECT_THAT(Marked({Point("same-cost-worse", 1, 2.0), Point("same-cost-better", 1, 1.0),
                      Point("same-loss-dearer", 3, 1.0)}),
              ElementsAre("same-cost-better*", "same-cost-worse", "same-loss-dearer"));
}

TEST(ParetoFrontTest, TwoIdenticalJobsAreBothOptimal) {
  EXPECT_THAT(Marked({Point("b", 2, 1.0), Point("a", 2, 1.0), Point("c", 3, 1.0)}),
              ElementsAre("a*", "b*", "c"));
}

TEST(ParetoFrontTest, OnlySucceededJobsWithAFiniteLossCanBeOptimalOrBlockOthers) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(Marked({Point("ok", 4, 2.0), Point("failed", 1, 0.1, v1::Job::FAILED),
                      Point("cancelled", 2, 0.2, v1::Job::CANCELLED), Point("diverged", 0.5, nan),
                      Point("infinite", 0.6, std::numeric_limits<double>::infinity())}),
              ElementsAre("diverged", "infinite", "failed", "cancelled", "ok*"));
}

TEST(ParetoFrontTest, NoPointsIsNoFront) { EXPECT_TRUE(Marked({}).empty()); }

}  // namespace
}  // namespace tuneledger
