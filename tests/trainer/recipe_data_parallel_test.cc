// Data-parallel training (worker/trainer/recipe/data_parallel.h) through tuneledger-train as
// processes on CPU with Gloo: N ranks of one global batch train what one process trains (the
// same losses within fp32 all-reduce rounding, the same adapter), a stop sent to any rank stops
// all of them after the same step and resumes to the same adapter, and a killed rank ends the
// others with a "rank_lost" error instead of a hang. In process: gradient buckets all-reduced
// during the backward sum what the ranks accumulated.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "lm/trainer_error.h"
#include "tests/testing/free_port.h"
#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"
#include "worker/trainer/recipe/data_parallel.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::MaxAdapterDiff;
using testing::RunProcess;
using testing::ScopedEnv;
using testing::TrainerBinary;
using testing::TrainerRun;
using testing::WriteTextFile;
using ::tuneledger::testing::FreePort;
using ::tuneledger::testing::TempDir;

TEST(ShardRowsTest, SplitsRowsContiguouslyWithSizesDifferingByAtMostOne) {
  for (int world = 1; world <= 5; ++world) {
    for (int64_t rows = 0; rows <= 11; ++rows) {
      int64_t next = 0;
      for (int rank = 0; rank < world; ++rank) {
        const RowShard shard = ShardRows(rows, rank, world);
        EXPECT_EQ(shard.offset, next) << rows << " rows, rank " << rank << " of " << world;
        EXPECT_GE(shard.count, rows / world);
        EXPECT_LE(shard.count, (rows + world - 1) / world);
        next = shard.offset + shard.count;
      }
      EXPECT_EQ(next, rows) << "every row goes to exactly one rank";
    }
  }
}

TEST(ParseRendezvousTest, TakesHostAndPortAndRefusesTheRest) {
  EXPECT_EQ(ParseRendezvous("10.0.0.7:29500"),
            std::make_pair(std::string("10.0.0.7"), uint16_t{29500}));
  EXPECT_EQ(ParseRendezvous("node-3.svc:1"),
            std::make_pair(std::string("node-3.svc"), uint16_t{1}));
  EXPECT_EQ(ParseRendezvous("[::1]:65535"), std::make_pair(std::string("::1"), uint16_t{65535}));
  for (const char* bad : {"", "host", "host:", ":29500", "host:0", "host:65536", "host:29x",
                          "host:-1", "host:99999999999999999999"}) {
    EXPECT_THROW(ParseRendezvous(bad), TrainError) << bad;
  }
}

// Gradient buckets all-reduced during the backward (DataParallel::ExpectLastBackward), with two
// ranks as threads of this process: parameters p0..p6 (p0 in no graph), buckets of two
// parameters taken last first: {p6,p5} {p4,p3} {p2,p1} {p0}. Each step has two micro-batches;
// only the second backward is armed, so a bucket must carry the accumulated gradient.
struct OverlapRank {
  std::vector<std::vector<float>> grads;     // per step, p_i's first element, i = 0..6
  std::vector<int64_t> started_in_backward;  // per step
  int64_t buckets = 0;
  std::string error;
};

constexpr int64_t kOverlapElements = 1000;

OverlapRank RunOverlapRank(int rank, const std::string& rendezvous, bool rows_in_last_batch) {
  OverlapRank result;
  try {
    RankOptions options;
    options.rank = rank;
    options.world_size = 2;
    options.rendezvous = rendezvous;
    options.timeout = std::chrono::seconds(60);
    options.bucket_bytes = 2 * kOverlapElements * static_cast<int64_t>(sizeof(float));
    DataParallel data_parallel(options, torch::kCPU);
    std::vector<torch::Tensor> params;
    for (int i = 0; i < 7; ++i) {
      params.push_back(torch::full({kOverlapElements}, 0.5 * i).requires_grad_(true));
    }
    for (int step = 0; step < 2; ++step) {
      for (torch::Tensor& p : params) p.mutable_grad() = torch::Tensor();
      torch::Tensor first = torch::zeros({});
      for (int i = 1; i < 7; ++i) first = first + (params[i] * ((rank + 1) * i)).sum();
      first.backward();
      data_parallel.ExpectLastBackward(params);
      if (rows_in_last_batch) {
        torch::Tensor second = torch::zeros({});
        for (int i = 1; i < 7; ++i) second = second + (params[i].pow(2) * (rank + 2)).sum();
        second.backward();
      }
      data_parallel.AllReduceGradients(params);
      std::vector<float> firsts;
      for (const torch::Tensor& p : params) firsts.push_back(p.grad()[0].item<float>());
      result.grads.push_back(firsts);
      result.started_in_backward.push_back(data_parallel.buckets_started_in_backward());
    }
    result.buckets = data_parallel.gradient_buckets();
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

TEST(DataParallelOverlapTest, BucketsStartInTheBackwardInOrderAndSumTheAccumulatedGradients) {
  for (const bool rank1_has_rows : {true, false}) {
    SCOPED_TRACE(rank1_has_rows ? "both ranks in the last micro-batch" : "rank 1 has no rows");
    const std::string rendezvous = "127.0.0.1:" + std::to_string(FreePort());
    OverlapRank ranks[2];
    std::thread other([&] { ranks[1] = RunOverlapRank(1, rendezvous, rank1_has_rows); });
    ranks[0] = RunOverlapRank(0, rendezvous, true);
    other.join();
    for (int rank = 0; rank < 2; ++rank) {
      ASSERT_EQ(ranks[rank].error, "") << "rank " << rank;
      EXPECT_EQ(ranks[rank].buckets, 4);
      for (int step = 0; step < 2; ++step) {
        // d/dp_i: (r + 1) i from the first micro-batch, 2 p_i (r + 2) from the second, summed
        // over the ranks that ran it.
        for (int i = 0; i < 7; ++i) {
          const double value = 0.5 * i;
          const double expected =
              i == 0 ? 0.0 : 3.0 * i + 2 * value * (2 + (rank1_has_rows ? 3 : 0));
          EXPECT_EQ(ranks[rank].grads[step][i], expected) << "rank " << rank << " p" << i;
        }
      }
    }
    // {p0} never fills during the backward, so the three buckets before it start there and it
    // starts after; a rank without rows starts all four after.
    EXPECT_THAT(ranks[0].started_in_backward, ::testing::ElementsAre(3, 3));
    EXPECT_THAT(ranks[1].started_in_backward,
                ::testing::ElementsAre(rank1_has_rows ? 3 : 0, rank1_has_rows ? 3 : 0));
  }
}

class DataParallelProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeTinyModel(dir_.File("model"));
    // 41 examples in batches of 8: the last batch of each epoch has one row, so one of two ranks
    // trains none of it.
    WriteTextFile(dir_.File("train.jsonl"), testing::TinyPromptCompletionData(41));
    WriteTextFile(dir_.File("valid.jsonl"), testing::TinyPromptCompletionData(9, 41));
  }

  // LoRA with dropout (the masks must match across ranks too), 2 epochs, gradient accumulation.
  std::string WriteSpec(int64_t checkpoint_every = 0) {
    const nlohmann::json spec = {
        {"model_path", dir_.File("model")},
        {"train_path", dir_.File("train.jsonl")},
        {"valid_path", dir_.File("valid.jsonl")},
        {"lora",
         {{"r", 4},
          {"alpha", 8},
          {"dropout", 0.1},
          {"target_modules", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"}}}},
        {"training",
         {{"epochs", 2},
          {"batch_size", 8},
          {"grad_accum_steps", 2},
          {"learning_rate", 2e-2},
          {"warmup_steps", 1},
          {"seq_len", 32},
          {"seed", 5},
          {"eval_every_steps", 2},
          {"checkpoint_every_steps", checkpoint_every}}}};
    WriteTextFile(dir_.File("spec.json"), spec.dump(2));
    return dir_.File("spec.json");
  }

  // `world` ranks of tuneledger-train on `out`, at once; rank r's run in [r]. `on_line(rank,
  // line)` as RunProcess's (stdout lines; only rank 0 prints any).
  std::vector<TrainerRun> TrainRanks(
      const std::string& spec, const std::string& out, int world,
      const std::function<bool(int, const nlohmann::json&)>& on_line = nullptr) {
    const std::string rendezvous = "127.0.0.1:" + std::to_string(FreePort());
    std::vector<TrainerRun> runs(world);
    std::vector<std::thread> threads;
    for (int rank = 0; rank < world; ++rank) {
      threads.emplace_back([&, rank] {
        std::function<bool(const nlohmann::json&)> each_line;
        if (on_line)
          each_line = [&, rank](const nlohmann::json& line) { return on_line(rank, line); };
        runs[rank] = RunProcess(
            TrainerBinary(),
            {"--spec", spec, "--out", out, "--threads", "1", "--rank", std::to_string(rank),
             "--world-size", std::to_string(world), "--rendezvous", rendezvous},
            each_line);
      });
    }
    for (std::thread& thread : threads) thread.join();
    return runs;
  }

  static std::vector<double> Field(const TrainerRun& run, const std::string& type,
                                   const std::string& field) {
    std::vector<double> values;
    for (const nlohmann::json& line : run.OfType(type)) values.push_back(line[field]);
    return values;
  }

  static void ExpectClose(const std::vector<double>& a, const std::vector<double>& b,
                          const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    ASSERT_FALSE(a.empty()) << what;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_NEAR(a[i], b[i], 1e-5 * std::max(1.0, std::abs(b[i]))) << what << " " << i;
    }
  }

  // The pid of the rank-1 process training on `out` (pgrep -f; "[-]" keeps the shell that runs
  // pgrep from matching itself), 0 when there is none.
  static int Rank1Pid(const std::string& out) {
    const std::string command = "pgrep -n -f -- '[-]-out " + out + " --threads 1 --rank 1 '";
    FILE* pipe = popen(command.c_str(), "r");
    int pid = 0;
    if (pipe != nullptr) {
      if (fscanf(pipe, "%d", &pid) != 1) pid = 0;
      pclose(pipe);
    }
    return pid;
  }

  TempDir dir_;
};

TEST_F(DataParallelProcessTest, TwoRanksOfFourRowsTrainWhatOneProcessOfEightTrains) {
  const std::string spec = WriteSpec();
  const TrainerRun single = testing::RunTrainer(spec, dir_.File("one"), {"--threads", "1"});
  ASSERT_EQ(single.exit_code, 0) << single.stderr_text;
  const std::vector<TrainerRun> ranks = TrainRanks(spec, dir_.File("two"), 2);
  ASSERT_EQ(ranks[0].exit_code, 0) << ranks[0].stderr_text;
  ASSERT_EQ(ranks[1].exit_code, 0) << ranks[1].stderr_text;

  ExpectClose(Field(ranks[0], "progress", "loss"), Field(single, "progress", "loss"), "loss");
  ExpectClose(Field(ranks[0], "eval", "eval_loss"), Field(single, "eval", "eval_loss"),
              "eval loss");
  // The adapters differ by fp32 rounding of the summed gradients, which Adam's normalisation
  // scales up for tiny gradients (~2e-5 here); a rank training on the wrong rows, masks or
  // gradients differs by 1e-2 or more.
  // Both saw every token of the global batches.
  EXPECT_EQ(Field(ranks[0], "progress", "tokens"), Field(single, "progress", "tokens"));
  EXPECT_LT(MaxAdapterDiff(dir_.File("one/adapter"), dir_.File("two/adapter")), 1e-4);
  // Rank 0 alone speaks and writes.
  EXPECT_TRUE(ranks[1].lines.empty()) << ranks[1].stdout_text;
  EXPECT_EQ(ranks[0].OfType("done").size(), 1u);
}

TEST_F(DataParallelProcessTest, ThreeRanksTrainWhatOneProcessTrains) {
  // 8 rows over 3 ranks (3, 3, 2) and a last batch of 1: uneven shares are the same training.
  const std::string spec = WriteSpec();
  const TrainerRun single = testing::RunTrainer(spec, dir_.File("one"), {"--threads", "1"});
  ASSERT_EQ(single.exit_code, 0) << single.stderr_text;
  const std::vector<TrainerRun> ranks = TrainRanks(spec, dir_.File("three"), 3);
  for (const TrainerRun& rank : ranks) ASSERT_EQ(rank.exit_code, 0) << rank.stderr_text;
  ExpectClose(Field(ranks[0], "progress", "loss"), Field(single, "progress", "loss"), "loss");
  EXPECT_LT(MaxAdapterDiff(dir_.File("one/adapter"), dir_.File("three/adapter")), 1e-4);
}

TEST_F(DataParallelProcessTest, AStopSentToOneRankStopsBothAfterTheSameStepAndTheyResume) {
  const std::string spec = WriteSpec(/*checkpoint_every=*/2);
  const TrainerRun single = testing::RunTrainer(spec, dir_.File("one"), {"--threads", "1"});
  ASSERT_EQ(single.exit_code, 0) << single.stderr_text;

  ScopedEnv pace("TUNELEDGER_TRAIN_MIN_STEP_SECONDS", "0.3");
  std::atomic<int> rank1_pid{0};
  // SIGTERM to rank 1 alone, once rank 0 reported step 3.
  std::vector<TrainerRun> stopped;
  {
    std::atomic<bool> sent{false};
    stopped = TrainRanks(spec, dir_.File("two"), 2, [&](int rank, const nlohmann::json& line) {
      if (rank == 0 && line["type"] == "progress" && line["step"] == 3 && !sent.exchange(true)) {
        rank1_pid = Rank1Pid(dir_.File("two"));
        if (rank1_pid > 0) kill(rank1_pid, SIGTERM);
      }
      return false;
    });
  }
  ASSERT_GT(rank1_pid.load(), 0) << "rank 1 not found";
  EXPECT_EQ(stopped[0].exit_code, 75) << stopped[0].stderr_text;
  EXPECT_EQ(stopped[1].exit_code, 75) << stopped[1].stderr_text;
  const std::vector<nlohmann::json> stop_lines = stopped[0].OfType("stopped");
  ASSERT_EQ(stop_lines.size(), 1u) << stopped[0].stdout_text;
  EXPECT_LT(stop_lines[0]["step"].get<int64_t>(), single.OfType("done")[0]["step"].get<int64_t>());
  EXPECT_TRUE(fs::exists(stop_lines[0]["checkpoint"].get<std::string>()));

  const std::vector<TrainerRun> resumed = TrainRanks(spec, dir_.File("two"), 2);
  ASSERT_EQ(resumed[0].exit_code, 0) << resumed[0].stderr_text;
  ASSERT_EQ(resumed[1].exit_code, 0) << resumed[1].stderr_text;
  EXPECT_LT(MaxAdapterDiff(dir_.File("one/adapter"), dir_.File("two/adapter")), 1e-4);
}

TEST_F(DataParallelProcessTest, AKilledRankEndsTheOtherWithARankLostError) {
  const std::string spec = WriteSpec();
  ScopedEnv pace("TUNELEDGER_TRAIN_MIN_STEP_SECONDS", "0.3");
  std::atomic<bool> sent{false};
  const auto start = std::chrono::steady_clock::now();
  const std::vector<TrainerRun> ranks =
      TrainRanks(spec, dir_.File("two"), 2, [&](int rank, const nlohmann::json& line) {
        if (rank == 0 && line["type"] == "progress" && line["step"] == 2 && !sent.exchange(true)) {
          const int pid = Rank1Pid(dir_.File("two"));
          EXPECT_GT(pid, 0) << "rank 1 not found";
          if (pid > 0) kill(pid, SIGKILL);
        }
        return false;
      });
  ASSERT_TRUE(sent.load());
  EXPECT_EQ(ranks[1].exit_code, 128 + SIGKILL);
  EXPECT_EQ(ranks[0].exit_code, 1) << ranks[0].stderr_text;
  const std::vector<nlohmann::json> errors = ranks[0].OfType("error");
  ASSERT_EQ(errors.size(), 1u) << ranks[0].stdout_text;
  EXPECT_EQ(errors[0]["reason"], "rank_lost");
  EXPECT_THAT(errors[0]["message"].get<std::string>(), HasSubstr("a rank was lost"));
  // Noticed when the connection closed, not after the 5-minute collective timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(120));
}

TEST_F(DataParallelProcessTest, RankFlagsOutOfRangeOrWithoutARendezvousAreUsageErrors) {
  const std::string spec = WriteSpec();
  for (const std::vector<std::string>& flags : std::vector<std::vector<std::string>>{
           {"--world-size", "2"},
           {"--rank", "2", "--world-size", "2", "--rendezvous", "127.0.0.1:29500"},
           {"--world-size", "0"}}) {
    std::vector<std::string> args = {"--spec", spec, "--out", dir_.File("out")};
    args.insert(args.end(), flags.begin(), flags.end());
    const TrainerRun run = RunProcess(TrainerBinary(), args, nullptr, 60, false);
    EXPECT_EQ(run.exit_code, 2) << flags[0] << "\n" << run.stderr_text;
    EXPECT_THAT(run.stderr_text, HasSubstr("--")) << run.stderr_text;
  }
}

}  // namespace
}  // namespace tuneledger::train
