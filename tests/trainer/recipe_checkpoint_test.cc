// Checkpoints: round trip, atomic commit (a .tmp folder is never resumed), pruning, and header
// validation with clear errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <optional>

#include "lm/trainer_error.h"
#include "tests/testing/temp_dir.h"
#include "tests/trainer/recipe_test_util.h"
#include "worker/trainer/recipe/checkpoint_io.h"
#include "worker/trainer/recipe/optimizer_setup.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ReadTextFile;
using testing::WriteTextFile;
using ::tuneledger::testing::TempDir;

const std::string kFingerprint = R"({"lora_r": 4, "seed": 1})";

// Two parameters, one AdamW step taken so the moments exist.
struct Fixture {
  std::vector<std::string> names = {"a.lora_A.weight", "a.lora_B.weight"};
  std::vector<torch::Tensor> parameters;
  std::unique_ptr<torch::optim::AdamW> optimizer;

  Fixture() {
    torch::manual_seed(3);
    parameters = {torch::randn({4, 6}, torch::requires_grad()),
                  torch::randn({6, 4}, torch::requires_grad())};
    optimizer = MakeAdamW(parameters, 1e-2, 0.0);
    (parameters[0].sum() + parameters[1].pow(2).sum()).backward();
    optimizer->step();
  }

  TrainSnapshot Snapshot(int64_t step) {
    TrainState state;
    state.step = step;
    state.data = {2, 5};
    state.tokens = 12345;
    state.loss_scaler = {512.0, 7};
    state.last_eval_loss = 1.25;
    return CaptureSnapshot(state, names, parameters, *optimizer, torch::kCPU, kFingerprint);
  }
};

TEST(CheckpointTest, RoundTripRestoresEverything) {
  TempDir dir;
  Fixture saved;
  const std::string path = WriteCheckpoint(dir.File("checkpoints"), saved.Snapshot(10), 3);
  EXPECT_EQ(path, fs::absolute(dir.File("checkpoints/step-10")).string());
  const torch::Tensor rng_after_save = torch::rand({3});  // advances the generator

  // Different values and optimizer moments (two more steps), then overwritten from the
  // checkpoint.
  Fixture restored;
  for (int i = 0; i < 2; ++i) {
    restored.optimizer->zero_grad();
    (restored.parameters[0].pow(3).sum() + restored.parameters[1].sum()).backward();
    restored.optimizer->step();
  }
  const TrainSnapshot snapshot = ReadCheckpoint(path);
  const TrainState state = RestoreSnapshot(snapshot, restored.names, restored.parameters,
                                           *restored.optimizer, torch::kCPU);
  EXPECT_EQ(state.step, 10);
  EXPECT_EQ(state.data.epoch, 2);
  EXPECT_EQ(state.data.batch_in_epoch, 5);
  EXPECT_EQ(state.tokens, 12345);
  EXPECT_EQ(state.loss_scaler.scale, 512.0);
  EXPECT_EQ(state.loss_scaler.good_steps, 7);
  ASSERT_TRUE(state.last_eval_loss.has_value());
  EXPECT_EQ(*state.last_eval_loss, 1.25);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::equal(restored.parameters[i], saved.parameters[i])) << saved.names[i];
  }
  // The generator is back where it was when the checkpoint was taken.
  EXPECT_TRUE(torch::equal(torch::rand({3}), rng_after_save));
  // AdamW continues identically: one more step on both gives equal parameters.
  for (Fixture* f : {&saved, &restored}) {
    f->optimizer->zero_grad();
    (f->parameters[0].sum() + f->parameters[1].pow(2).sum()).backward();
    f->optimizer->step();
  }
  for (size_t i = 0; i < 2; ++i) {
    const double diff = (restored.parameters[i] - saved.parameters[i]).abs().max().item<double>();
    EXPECT_EQ(diff, 0.0) << saved.names[i] << " max abs diff " << diff;
  }
}

// Early stopping's bookkeeping (train_state.h) survives a checkpoint: the best evaluation's
// weights, its loss and step, the evaluations since, the lowest 10-step mean; a run without
// early stopping writes none of it and reads back none.
TEST(CheckpointTest, EarlyStopBookkeepingRoundTrips) {
  TempDir dir;
  Fixture saved;
  TrainSnapshot snapshot = saved.Snapshot(20);
  const TrainSnapshot without = snapshot;
  snapshot.state.best_eval_loss = 0.75;
  snapshot.state.best_step = 12;
  snapshot.state.evals_since_best = 2;
  snapshot.state.lowest_recent_loss = 0.5;
  for (const torch::Tensor& parameter : saved.parameters) {
    snapshot.best_parameters.push_back(parameter.detach().clone() * 2);
  }
  const TrainSnapshot read = ReadCheckpoint(WriteCheckpoint(dir.File("with"), snapshot, 3));
  EXPECT_EQ(read.state.best_eval_loss, std::optional<double>(0.75));
  EXPECT_EQ(read.state.best_step, 12);
  EXPECT_EQ(read.state.evals_since_best, 2);
  EXPECT_EQ(read.state.lowest_recent_loss, std::optional<double>(0.5));
  ASSERT_EQ(read.best_parameters.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::equal(read.best_parameters[i], snapshot.best_parameters[i]))
        << saved.names[i];
  }

  const TrainSnapshot plain = ReadCheckpoint(WriteCheckpoint(dir.File("without"), without, 3));
  EXPECT_FALSE(plain.state.best_eval_loss.has_value());
  EXPECT_EQ(plain.state.evals_since_best, 0);
  EXPECT_TRUE(plain.best_parameters.empty());
}

// training.data_selection's kept examples survive a checkpoint (a resumed run trains on the same
// ones without scoring); a run without selection writes none and reads back none.
TEST(CheckpointTest, DataSelectionRoundTrips) {
  TempDir dir;
  Fixture saved;
  TrainSnapshot snapshot = saved.Snapshot(4);
  const TrainSnapshot without = snapshot;
  snapshot.data_selection = DataSelectionState{"loss", 0.25, {0, 3, 7, 40}};
  const TrainSnapshot read = ReadCheckpoint(WriteCheckpoint(dir.File("with"), snapshot, 3));
  ASSERT_TRUE(read.data_selection.has_value());
  EXPECT_EQ(read.data_selection->method, "loss");
  EXPECT_EQ(read.data_selection->keep_fraction, 0.25);
  EXPECT_EQ(read.data_selection->kept, (std::vector<int64_t>{0, 3, 7, 40}));

  const TrainSnapshot plain = ReadCheckpoint(WriteCheckpoint(dir.File("without"), without, 3));
  EXPECT_FALSE(plain.data_selection.has_value());
}

TEST(CheckpointTest, TmpFoldersAreNeverResumedAndArePruned) {
  TempDir dir;
  const std::string root = dir.File("checkpoints");
  Fixture fixture;
  WriteCheckpoint(root, fixture.Snapshot(5), 2);
  // A crash mid-write leaves step-9.tmp/ (even with a header): it must not be picked.
  fs::create_directories(root + "/step-9.tmp");
  WriteTextFile(root + "/step-9.tmp/header.json", "{}");
  EXPECT_EQ(FindLatestCheckpoint(root), fs::absolute(root + "/step-5").string());
  WriteCheckpoint(root, fixture.Snapshot(10), 2);
  EXPECT_FALSE(fs::exists(root + "/step-9.tmp")) << "stale .tmp folders are removed";
  WriteCheckpoint(root, fixture.Snapshot(15), 2);
  EXPECT_FALSE(fs::exists(root + "/step-5")) << "only the newest 2 are kept";
  EXPECT_TRUE(fs::exists(root + "/step-10"));
  EXPECT_EQ(FindLatestCheckpoint(root), fs::absolute(root + "/step-15").string());
  EXPECT_FALSE(FindLatestCheckpoint(dir.File("nothing-here")).has_value());
}

std::string ReadError(const std::string& dir) {
  try {
    ReadCheckpoint(dir);
  } catch (const TrainError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(CheckpointTest, BadHeadersAreClearErrors) {
  TempDir dir;
  Fixture fixture;
  const std::string path = WriteCheckpoint(dir.File("c"), fixture.Snapshot(3), 3);
  const std::string header_path = path + "/header.json";
  const std::string good = ReadTextFile(header_path);

  WriteTextFile(header_path, "{\"format\": \"tuneledger-checkpoint\", \"vers");
  EXPECT_THAT(ReadError(path), HasSubstr("header.json is not valid JSON"));

  nlohmann::json header = nlohmann::json::parse(good);
  header["version"] = 99;
  WriteTextFile(header_path, header.dump());
  EXPECT_THAT(ReadError(path), HasSubstr("unsupported checkpoint version 99"));

  header = nlohmann::json::parse(good);
  header["format"] = "something-else";
  WriteTextFile(header_path, header.dump());
  EXPECT_THAT(ReadError(path), HasSubstr("format is not \"tuneledger-checkpoint\""));

  header = nlohmann::json::parse(good);
  header.erase("batch_in_epoch");
  WriteTextFile(header_path, header.dump());
  EXPECT_THAT(ReadError(path), HasSubstr("missing field \"batch_in_epoch\""));

  header = nlohmann::json::parse(good);
  header["step"] = "three";
  WriteTextFile(header_path, header.dump());
  EXPECT_THAT(ReadError(path), HasSubstr("field \"step\" has the wrong type"));

  header = nlohmann::json::parse(good);
  header["parameters"].push_back("extra.weight");
  header["adam_steps"].push_back(1);
  WriteTextFile(header_path, header.dump());
  EXPECT_THAT(ReadError(path), HasSubstr("lacks param/extra.weight"));

  header = nlohmann::json::parse(good);
  header["data_selection"] = {{"method", "entropy"}, {"keep_fraction", 0.5}, {"kept", "all"}};
  WriteTextFile(header_path, header.dump());
  EXPECT_THAT(ReadError(path), HasSubstr("data_selection: header.json: field \"kept\" has the"));

  WriteTextFile(header_path, good);
  WriteTextFile(path + "/state.safetensors", "truncated");
  EXPECT_THAT(ReadError(path), HasSubstr("state.safetensors"));

  fs::remove(header_path);
  EXPECT_THAT(ReadError(path), HasSubstr("cannot open header.json"));
}

TEST(CheckpointTest, FingerprintAndShapeMismatchesAreNamed) {
  TempDir dir;
  Fixture fixture;
  const std::string path = WriteCheckpoint(dir.File("c"), fixture.Snapshot(3), 3);
  const TrainSnapshot snapshot = ReadCheckpoint(path);
  try {
    CheckFingerprint(path, snapshot.fingerprint, R"({"lora_r": 8, "seed": 1})");
    FAIL() << "expected a fingerprint mismatch";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr("lora_r was 4, now 8"));
  }
  CheckFingerprint(path, snapshot.fingerprint, kFingerprint);  // equal: no error

  std::vector<torch::Tensor> wrong = {torch::zeros({4, 6}), torch::zeros({5, 4})};
  try {
    RestoreSnapshot(snapshot, fixture.names, wrong, *fixture.optimizer, torch::kCPU);
    FAIL() << "expected a shape mismatch";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr("a.lora_B.weight has shape [6, 4]"));
  }
}

}  // namespace
}  // namespace tuneledger::train
