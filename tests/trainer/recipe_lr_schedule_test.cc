// Learning-rate schedule values (formulas in lr_schedule.h), and the loss scaler's rules.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "worker/trainer/recipe/loss_scaler.h"
#include "worker/trainer/recipe/lr_schedule.h"

namespace tuneledger::train {
namespace {

TEST(LrScheduleTest, WarmupThenCosine) {
  const LrSchedule schedule(LrScheduleKind::kCosine, 1e-3, /*warmup=*/4, /*total=*/14);
  EXPECT_DOUBLE_EQ(schedule.LrAt(0), 0.25e-3);
  EXPECT_DOUBLE_EQ(schedule.LrAt(1), 0.50e-3);
  EXPECT_DOUBLE_EQ(schedule.LrAt(3), 1e-3);
  EXPECT_DOUBLE_EQ(schedule.LrAt(4), 1e-3);                                       // p = 0
  EXPECT_NEAR(schedule.LrAt(9), 1e-3 * 0.5 * (1 + std::cos(M_PI * 0.5)), 1e-15);  // p = 0.5
  EXPECT_NEAR(schedule.LrAt(13), 1e-3 * 0.5 * (1 + std::cos(M_PI * 0.9)), 1e-15);
  EXPECT_GT(schedule.LrAt(13), 0.0);
  for (int64_t s = 4; s < 13; ++s) EXPECT_GT(schedule.LrAt(s), schedule.LrAt(s + 1));
}

TEST(LrScheduleTest, LinearAndConstant) {
  const LrSchedule linear(LrScheduleKind::kLinear, 2.0, 0, 10);
  EXPECT_DOUBLE_EQ(linear.LrAt(0), 2.0);
  EXPECT_DOUBLE_EQ(linear.LrAt(5), 1.0);
  EXPECT_DOUBLE_EQ(linear.LrAt(9), 0.2);
  const LrSchedule constant(LrScheduleKind::kConstant, 3.0, 2, 10);
  EXPECT_DOUBLE_EQ(constant.LrAt(0), 1.5);
  EXPECT_DOUBLE_EQ(constant.LrAt(1), 3.0);
  EXPECT_DOUBLE_EQ(constant.LrAt(9), 3.0);
}

TEST(LrScheduleTest, WarmupLongerThanTraining) {
  const LrSchedule schedule(LrScheduleKind::kCosine, 1.0, 10, 5);
  EXPECT_DOUBLE_EQ(schedule.LrAt(4), 0.5);
}

TEST(LossScalerTest, SkipsAndHalvesOnOverflowGrowsAfterGoodSteps) {
  DynamicLossScaler scaler(true, /*initial_scale=*/1024, /*growth_interval=*/3);
  torch::Tensor parameter = torch::zeros({2}, torch::requires_grad());
  parameter.mutable_grad() = torch::tensor({2048.0f, -1024.0f});
  EXPECT_TRUE(scaler.UnscaleGradients({parameter}));
  EXPECT_FLOAT_EQ(parameter.grad()[0].item<float>(), 2.0f);
  scaler.Update(true);
  scaler.Update(true);
  EXPECT_EQ(scaler.scale(), 1024);
  scaler.Update(true);
  EXPECT_EQ(scaler.scale(), 2048);

  parameter.mutable_grad() = torch::tensor({INFINITY, 1.0f});
  EXPECT_FALSE(scaler.UnscaleGradients({parameter}));
  scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 1024);
  EXPECT_EQ(scaler.state().good_steps, 0);

  DynamicLossScaler disabled(false);
  EXPECT_EQ(disabled.scale(), 1.0);
  EXPECT_TRUE(disabled.UnscaleGradients({parameter}));
}

}  // namespace
}  // namespace tuneledger::train
