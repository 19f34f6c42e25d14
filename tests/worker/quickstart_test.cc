// deploy/quickstart.sh, run as a user would: it must end with the demo job SUCCEEDED, having
// shown live progress, the cost report and the adapter folder, and an adapter that writes at
// least 90% of 100 held-out cards exactly (the default demo fine-tunes SmolLM2-135M-Instruct),
// within 15 minutes, leaving no process behind.
//
// QuickstartTest.RunsTheDemoEndToEnd ("slow") reuses this build folder, so it measures
// everything but compiling. QuickstartFreshBuildTest ("bench", never gated: it compiles the
// four executables from nothing for many minutes) measures the whole promise, build included.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/child_process.h"
#include "base/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::tuneledger::testing::TempDir;

constexpr absl::Duration kPromised = absl::Minutes(15);

struct QuickstartRun {
  CompletedProcess result;
  absl::Duration took;
  std::string run_dir;
};

class Quickstart {
 public:
  const std::string& root() const { return root_.path(); }

  absl::StatusOr<QuickstartRun> Run(const std::string& build_dir,
                                    std::map<std::string, std::string> env = {}) {
    QuickstartRun run;
    run.run_dir = root_.File("run");
    ChildProcessOptions options;
    options.argv = {"/bin/bash", std::string(TUNELEDGER_SOURCE_DIR) + "/deploy/quickstart.sh"};
    options.env = std::move(env);
    options.env["BUILD_DIR"] = build_dir;
    options.env["QUICKSTART_DIR"] = run.run_dir;
    const absl::Time start = absl::Now();
    TL_ASSIGN_OR_RETURN(run.result,
                        ChildProcess::RunToCompletion(options, kPromised + absl::Minutes(5)));
    run.took = absl::Now() - start;
    return run;
  }

 private:
  TempDir root_{"quickstart"};
};

// Live progress: "job N RUNNING step K/T" lines with K increasing.
std::vector<int> ProgressSteps(const std::string& output) {
  std::vector<int> steps;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    size_t at = line.find(" RUNNING step ");
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(at + strlen(" RUNNING step "));
    int step = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find('/')), &step)) steps.push_back(step);
  }
  return steps;
}

bool AnyProcessMentions(const std::string& needle) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (absl::StrContains(cmdline, needle)) return true;
  }
  return false;
}

void ExpectDemoSucceeded(const QuickstartRun& run) {
  const std::string& out = run.result.stdout_text;
  SCOPED_TRACE(absl::StrCat("quickstart output:\n", out, "\nstderr:\n", run.result.stderr_text));
  EXPECT_TRUE(run.result.status.success()) << run.result.status.ToString();
  EXPECT_LT(run.took, kPromised);

  std::vector<int> steps = ProgressSteps(out);
  EXPECT_GE(steps.size(), 5u) << "too little live progress";
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  EXPECT_THAT(out, HasSubstr(" SUCCEEDED adapter at "));
  EXPECT_THAT(out, HasSubstr("Cost report for job"));
  EXPECT_THAT(out, HasSubstr("compute total $"));
  // The demo's sample prompt, answered before and after the fine-tune, from the trainer's log.
  const size_t before = out.find("sample before training:\n");
  const size_t after = out.find("sample after training:\n");
  EXPECT_NE(before, std::string::npos);
  EXPECT_NE(after, std::string::npos);
  EXPECT_LT(before, after);

  const std::string marker = "adapter (PEFT format): ";
  size_t at = out.find(marker);
  ASSERT_NE(at, std::string::npos);
  std::string adapter = out.substr(at + marker.size(), out.find('\n', at) - at - marker.size());
  EXPECT_TRUE(fs::is_regular_file(adapter + "/adapter_model.safetensors")) << adapter;
  EXPECT_TRUE(fs::is_regular_file(adapter + "/adapter_config.json")) << adapter;
  EXPECT_EQ(adapter.rfind(run.run_dir, 0), 0u) << "adapter outside QUICKSTART_DIR: " << adapter;
  // The cost card beside the adapter, printed by the quickstart: the real model's licence, read
  // from the model card deploy/import_gguf.py wrote.
  EXPECT_TRUE(fs::is_regular_file(adapter + "/COST.md")) << adapter;
  EXPECT_THAT(out, HasSubstr("# Cost card: quickstart-demo"));
  EXPECT_THAT(out, HasSubstr("| Base model licence | apache-2.0 (from README.md) |"));

  // The fine-tune learned the task, not only the format: exact cards on held-out sentences.
  const std::string rate_marker = "held-out exact match: ";
  const size_t rate_at = out.find(rate_marker);
  ASSERT_NE(rate_at, std::string::npos);
  int exact = 0;
  int examples = 0;
  const std::string rate = out.substr(rate_at + rate_marker.size(), 16);
  ASSERT_EQ(std::sscanf(rate.c_str(), "%d/%d", &exact, &examples), 2) << rate;
  EXPECT_EQ(examples, 100);
  EXPECT_GE(exact, 90) << "held-out exact match " << exact << "/" << examples;

  // Everything it started is gone: server, local worker, trainer.
  EXPECT_FALSE(AnyProcessMentions(run.run_dir));
}

TEST(QuickstartTest, RunsTheDemoEndToEnd) {
  Quickstart quickstart;
  const std::string build_dir = fs::path(TUNELEDGER_BIN_DIR).parent_path().string();
  absl::StatusOr<QuickstartRun> run = quickstart.Run(build_dir);
  ASSERT_OK(run);
  ExpectDemoSucceeded(*run);
}

TEST(QuickstartFreshBuildTest, FinishesWithinFifteenMinutesBuildIncluded) {
  Quickstart quickstart;
  // A build folder that does not exist yet and no compiler cache: what a fresh machine sees.
  absl::StatusOr<QuickstartRun> run =
      quickstart.Run(quickstart.root() + "/build", {{"CCACHE_DISABLE", "1"}});
  ASSERT_OK(run);
  ExpectDemoSucceeded(*run);
  std::cout << "quickstart with a fresh build took " << absl::FormatDuration(run->took) << "\n";
}

}  // namespace
}  // namespace tuneledger
