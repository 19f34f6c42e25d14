// The demo: LoRA on the bundled tiny model with the demo data lowers the validation loss by at
// least 30%. Runs the real demo spec (models/demo/spec.json) with absolute paths, as the
// quickstart does. Its wall time is printed, not asserted: it is about 14 s alone on 2 cores,
// but many times that when other LibTorch processes share the cores, and speed targets belong
// in bench/, not in tests.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using testing::RunProcess;
using testing::TrainerBinary;
using testing::WriteTextFile;
using ::tuneledger::testing::TempDir;

TEST(DemoTest, LoraLowersValidationLossByThirtyPercent) {
  const fs::path repo(TUNELEDGER_SOURCE_DIR);
  nlohmann::json spec =
      nlohmann::json::parse(testing::ReadTextFile((repo / "models/demo/spec.json").string()));
  for (const char* field : {"model_path", "train_path", "valid_path"}) {
    spec[field] =
        (repo / "models/demo" / spec[field].get<std::string>()).lexically_normal().string();
  }
  TempDir dir;
  WriteTextFile(dir.File("spec.json"), spec.dump(2));

  const auto start = std::chrono::steady_clock::now();
  const auto run =
      RunProcess(TrainerBinary(), {"--spec", dir.File("spec.json"), "--out", dir.File("out")});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;

  const auto evals = run.OfType("eval");
  ASSERT_GE(evals.size(), 2u);
  ASSERT_EQ(evals.front()["step"], 0) << "the first eval line is the base model's loss";
  const double before = evals.front()["eval_loss"];
  const double after = evals.back()["eval_loss"];
  const double reduction = 1.0 - after / before;
  std::cerr << "demo: eval loss " << before << " -> " << after << " (" << reduction * 100
            << "% lower) in " << seconds << " s\n"
            << run.stderr_text;
  EXPECT_GE(reduction, 0.30) << "expected >= 30% lower validation loss, got " << reduction * 100
                             << "% (" << before << " -> " << after << ")";
}

}  // namespace
}  // namespace tuneledger::train
