// The pre-flight estimate (server/core/job_estimator.h): token and step counts against the
// trainer's own data code (LoadJsonlDataset, the torch-free tuneledger::trainer_data) and its
// batching rules, the file-size fallback, measured rates against cold starts, and worker classes.
// The batch order of a partial epoch is checked against the trainer's batcher itself in
// job_estimator_batcher_parity_test.cc.
#include "server/core/job_estimator.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lm/data/byte_tokenizer.h"
#include "lm/data/jsonl_dataset.h"
#include "lm/text/hf_chat_template.h"
#include "lm/text/hf_tokenizer.h"
#include "server/core/job_spec_validator.h"
#include "tests/testing/source_path.h"
#include "tests/testing/temp_dir.h"

namespace tuneledger {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::tuneledger::testing::TempDir;

using ::tuneledger::testing::SourcePath;

const std::string kTinyModel = SourcePath("models/tiny-llama");
const std::string kSmolModel = SourcePath("models/smollm2-135m-instruct");

// A spec as SubmitJob stores it: validated shape, defaults filled.
v1::JobSpec Spec(const std::string& model, const std::string& train, int batch_size, int grad_accum,
                 int epochs, int max_steps, int seq_len = 16) {
  v1::JobSpec spec;
  spec.set_model_path(model);
  spec.set_train_path(train);
  v1::TrainingConfig& t = *spec.mutable_training();
  t.set_batch_size(batch_size);
  t.set_grad_accum_steps(grad_accum);
  t.set_epochs(epochs);
  t.set_max_steps(max_steps);
  t.set_seq_len(seq_len);
  t.set_seed(7);
  return WithDefaults(spec);
}

v1::JobEstimate Estimate(const v1::JobSpec& spec, const std::vector<v1::Worker>& workers = {},
                         const std::vector<SucceededRun>& past = {},
                         const EstimatorOptions& options = {}) {
  return BuildJobEstimate(spec, GroupActiveWorkers(workers), past,
                          absl::FromUnixSeconds(1'800'000'000), options);
}

// The trainer's own reading of the file (what tuneledger-train trains on).
train::TokenizedDataset TrainerDataset(const std::string& model, const std::string& train,
                                       int seq_len, int64_t vocab_size) {
  std::unique_ptr<train::Tokenizer> tokenizer;
  if (fs::exists(fs::path(model) / train::HfTokenizer::kFileName)) {
    tokenizer = train::HfTokenizer::FromModelDir(model);
  } else {
    tokenizer = train::ByteTokenizer::FromModelDir(model);
  }
  std::unique_ptr<train::HfChatTemplate> chat_template = train::HfChatTemplate::FromModelDir(model);
  train::DatasetOptions options{seq_len, vocab_size};
  options.chat_template = chat_template.get();
  return train::LoadJsonlDataset(train, *tokenizer, options);
}

v1::Worker Worker(const std::string& accelerator, double price, bool spot, int gpus = 1,
                  v1::Worker::State state = v1::Worker::IDLE) {
  v1::Worker worker;
  worker.set_accelerator(accelerator);
  worker.set_price_per_gpu_hour(price);
  worker.set_spot(spot);
  worker.set_gpus(gpus);
  worker.set_state(state);
  return worker;
}

SucceededRun PastRun(const std::string& id, const std::string& shape, int64_t tokens,
                     std::vector<SucceededRun::Attempt> attempts, int64_t scoring_tokens = 0) {
  SucceededRun run;
  run.job_id = id;
  run.model_shape = shape;
  run.tokens = tokens;
  run.scoring_tokens = scoring_tokens;
  run.attempts = std::move(attempts);
  return run;
}

// Lines of every data format, of varied lengths: at seq_len 48 one is cut and one dropped (its
// prompt fills seq_len, leaving nothing to train on).
constexpr char kMixedData[] =
    R"({"prompt": "Make a card: Anna\n", "completion": "Anna | 4\n"})"
    "\n"
    R"({"text": "hello"})"
    "\n\n"
    R"({"text": "a text much longer than forty-eight bytes, which the trainer cuts to seq_len"})"
    "\n"
    R"({"prompt": "a prompt that is longer than seq_len, so none of it trains at all", "completion": "x"})"
    "\n"
    R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})"
    "\n"
    R"({"input_ids": [5, 6, 7], "labels": [-100, 6, 7]})"
    "\n"
    R"({"prompt": "ab", "completion": "cd"})"
    "\n";

TEST(JobEstimatorTest, EpochsCountEveryExampleTheTrainerKeepsWithTheByteTokenizer) {
  TempDir dir;
  const std::string train = dir.Write("train.jsonl", kMixedData);
  const train::TokenizedDataset dataset = TrainerDataset(kTinyModel, train, 48, 259);
  ASSERT_EQ(dataset.truncated, 2);  // the long text and the long prompt
  ASSERT_EQ(dataset.dropped_no_targets, 1);
  const int64_t examples = static_cast<int64_t>(dataset.examples.size());  // 6

  // 6 examples in batches of 4: 2 batches per epoch; 2 per step: 1 step per epoch.
  const v1::JobEstimate estimate = Estimate(Spec(kTinyModel, train, 4, 2, 3, 0, 48));
  EXPECT_TRUE(estimate.tokens_counted());
  EXPECT_EQ(estimate.examples(), examples);
  EXPECT_EQ(estimate.total_steps(), 3);
  EXPECT_EQ(estimate.tokens_to_train(), 3 * dataset.total_tokens());
  EXPECT_EQ(estimate.scoring_tokens(), 0);
  EXPECT_THAT(estimate.tokens_basis(),
              AllOf(HasSubstr("counted: tokenized all 6 examples"),
                    HasSubstr("byte-level byte_tokenizer.json"), HasSubstr("2 cut to seq_len 48"),
                    HasSubstr("1 without a target dropped")));

  // Batches of 4 with 3 per step: the second step of an epoch would span two epochs, so each
  // epoch is one step of 2 batches; batches of 1 with 4 per step: 2 steps per epoch (4 + 2).
  EXPECT_EQ(Estimate(Spec(kTinyModel, train, 4, 3, 5, 0, 48)).total_steps(), 5);
  EXPECT_EQ(Estimate(Spec(kTinyModel, train, 1, 4, 5, 0, 48)).total_steps(), 10);
}

TEST(JobEstimatorTest, MaxStepsTrainWholeEpochsThenTheFirstBatchesOfTheNext) {
  TempDir dir;
  std::string data;
  for (int i = 0; i < 12; ++i)
    data += R"({"text": "abcd"})"
            "\n";  // BOS + 4 + EOS = 6 tokens
  const std::string train = dir.Write("train.jsonl", data);
  // 12 examples, batches of 3 (all full): 4 batches per epoch.
  struct Case {
    int grad_accum;
    int max_steps;
    int64_t tokens;
  };
  for (const Case& c : {
           Case{1, 6, 12 * 6 + 2 * 3 * 6},  // one epoch, then 2 batches
           Case{1, 8, 2 * 12 * 6},          // two whole epochs
           Case{3, 3, 12 * 6 + 3 * 3 * 6},  // steps of 3 + 1 batches, then 3 batches
           Case{3, 2, 12 * 6},              // the second step takes the epoch's last batch only
       }) {
    SCOPED_TRACE(absl::StrCat("grad_accum ", c.grad_accum, " max_steps ", c.max_steps));
    const v1::JobEstimate estimate =
        Estimate(Spec(kTinyModel, train, 3, c.grad_accum, 0, c.max_steps));
    EXPECT_EQ(estimate.total_steps(), c.max_steps);
    EXPECT_EQ(estimate.examples(), 12);
    EXPECT_EQ(estimate.tokens_to_train(), c.tokens);
  }
}

TEST(JobEstimatorTest, TokenizerJsonModelsCountAsTheTrainerWithTheirChatTemplate) {
  if (!fs::exists(fs::path(kSmolModel) / "tokenizer.json")) {
    GTEST_SKIP() << kSmolModel << " is absent (tests/models makes it)";
  }
  TempDir dir;
  const std::string train = dir.Write("train.jsonl", kMixedData);
  const train::TokenizedDataset dataset = TrainerDataset(kSmolModel, train, 24, 49152);
  const v1::JobEstimate estimate = Estimate(Spec(kSmolModel, train, 2, 1, 2, 0, 24));
  EXPECT_TRUE(estimate.tokens_counted());
  EXPECT_EQ(estimate.examples(), static_cast<int64_t>(dataset.examples.size()));
  EXPECT_EQ(estimate.tokens_to_train(), 2 * dataset.total_tokens());
  EXPECT_THAT(estimate.tokens_basis(), HasSubstr("the model's tokenizer.json"));
  EXPECT_EQ(estimate.model_params(), 134515008) << "SmolLM2-135M, tied embeddings";
}

TEST(JobEstimatorTest, ALongFileIsTokenizedInPartAndExtrapolatedByBytes) {
  TempDir dir;
  std::string data;
  for (int i = 0; i < 100; ++i)
    data += R"({"text": "abcdefgh"})"
            "\n";  // 10 tokens, 21 bytes
  const std::string train = dir.Write("train.jsonl", data);
  EstimatorOptions options;
  options.max_tokenized_bytes = 25 * 21;
  const v1::JobEstimate estimate = Estimate(Spec(kTinyModel, train, 10, 1, 1, 0), {}, {}, options);
  EXPECT_TRUE(estimate.tokens_counted());
  EXPECT_EQ(estimate.examples(), 100);
  EXPECT_EQ(estimate.total_steps(), 10);
  EXPECT_EQ(estimate.tokens_to_train(), 1000);
  EXPECT_THAT(estimate.tokens_basis(),
              AllOf(HasSubstr("counted in part"), HasSubstr("the first 525 of 2100 bytes"),
                    HasSubstr("(25 examples)")));

  // One line longer than the bound is never read whole: the file's size stands in for it.
  const std::string endless = dir.Write("endless.jsonl", std::string(3000, 'x'));
  const v1::JobEstimate unread =
      Estimate(Spec(kTinyModel, endless, 10, 1, 1, 0, 512), {}, {}, options);
  EXPECT_FALSE(unread.tokens_counted());
  EXPECT_EQ(unread.examples(), 3);  // 3000 bytes at 1024 bytes per example
  EXPECT_EQ(unread.tokens_to_train(), 3 * 256);
  EXPECT_THAT(unread.tokens_basis(), HasSubstr("no complete line in the first 525 bytes"));
}

TEST(JobEstimatorTest, WithoutATokenizerTheServerCanLoadTheFileSizeIsUsedAndSaidSo) {
  TempDir dir;
  const std::string model = dir.File("sentencepiece-model");
  fs::create_directories(model);
  fs::copy_file(kTinyModel + "/config.json", model + "/config.json");
  dir.Write("sentencepiece-model/tokenizer.model", "not read");
  // 40 and 12 bytes: 10 and 3 tokens at 4 bytes per token; seq_len 8 cuts the first.
  const std::string train =
      dir.Write("train.jsonl", std::string(R"({"text": "0123456789012345678901234567"})") + "\n\n" +
                                   R"({"text": ""})" + "\n");
  const v1::JobEstimate estimate = Estimate(Spec(model, train, 4, 1, 2, 0, 8));
  EXPECT_FALSE(estimate.tokens_counted());
  EXPECT_EQ(estimate.examples(), 2);
  EXPECT_EQ(estimate.total_steps(), 2);
  EXPECT_EQ(estimate.tokens_to_train(), 2 * (8 + 3));
  EXPECT_THAT(
      estimate.tokens_basis(),
      AllOf(HasSubstr("assumed, not counted"), HasSubstr("SentencePiece"),
            HasSubstr("4 bytes of the file per token"), HasSubstr("each of the 2 non-blank")));
  EXPECT_EQ(estimate.model_params(), 820736) << "the model is still known";

  // A file the server cannot read at all: nothing to estimate from, and a note says so.
  const v1::JobEstimate missing = Estimate(Spec(kTinyModel, dir.File("absent.jsonl"), 4, 1, 1, 0));
  EXPECT_FALSE(missing.tokens_counted());
  EXPECT_EQ(missing.tokens_to_train(), 0);
  EXPECT_THAT(missing.notes(), Contains(HasSubstr("cannot be read by the server")));
}

TEST(JobEstimatorTest, ALineTheTrainerWouldRefuseIsANoteAndTheEstimateFallsBack) {
  TempDir dir;
  const std::string train =
      dir.Write("train.jsonl", std::string(R"({"text": "ok"})") + "\n{not json\n");
  const v1::JobEstimate estimate = Estimate(Spec(kTinyModel, train, 4, 1, 1, 0));
  EXPECT_FALSE(estimate.tokens_counted());
  EXPECT_EQ(estimate.examples(), 2);
  EXPECT_THAT(estimate.notes(), Contains(HasSubstr(train + ":2: not valid JSON (at byte 3)")));
}

TEST(JobEstimatorTest, DataSelectionTrainsOnTheKeptShareAtTheMeanLengthAndScoresEveryExample) {
  TempDir dir;
  std::string data;
  for (int i = 1; i <= 10; ++i) {
    data += absl::StrCat(R"({"text": ")", std::string(i, 'x'), "\"}\n");  // i + 2 tokens
  }
  const std::string train = dir.Write("train.jsonl", data);
  v1::JobSpec spec = Spec(kTinyModel, train, 2, 1, 2, 0);
  spec.mutable_training()->mutable_data_selection()->set_method(v1::DataSelection::ENTROPY);
  spec.mutable_training()->mutable_data_selection()->set_keep_fraction(0.35);
  const v1::JobEstimate estimate = Estimate(spec);
  const int64_t all_tokens = 55 + 20;
  EXPECT_EQ(estimate.examples(), 4);  // ceil(3.5)
  EXPECT_EQ(estimate.total_steps(), 4);
  EXPECT_EQ(estimate.scoring_tokens(), all_tokens);
  EXPECT_EQ(estimate.tokens_to_train(), std::llround(2 * 4 * (all_tokens / 10.0)));
  EXPECT_THAT(estimate.notes(), Contains(HasSubstr("Data selection keeps 4 of 10 examples")));
}

TEST(JobEstimatorTest, ModelShapeIsTheDimensionsAndTrainingShapeWhateverTheTargetOrder) {
  TempDir dir;
  const std::string train = dir.Write("train.jsonl", R"({"text": "abc"})"
                                                     "\n");
  v1::JobSpec spec = Spec(kTinyModel, train, 4, 1, 1, 0);
  spec.mutable_lora()->clear_target_modules();
  spec.mutable_lora()->add_target_modules("v_proj");
  spec.mutable_lora()->add_target_modules("q_proj");
  const v1::JobEstimate estimate = Estimate(spec);
  // 4 layers x (q, k, v, o: 128x128 + 2 x 128x64 + 128x128; MLP 3 x 128x384; 2 norms of 128)
  // + tied embeddings 259x128 + the final norm.
  EXPECT_EQ(estimate.model_params(), 4 * (196608 + 256) + 259 * 128 + 128);
  EXPECT_EQ(estimate.model_shape(),
            "hidden=128 layers=4 intermediate=384 heads=4 kv_heads=2 vocab=259; lora_r=16 "
            "targets=q_proj,v_proj; seq_len=16 batch_size=4 precision=auto "
            "gradient_checkpointing=off");
  v1::JobSpec reordered = spec;
  reordered.mutable_lora()->mutable_target_modules()->SwapElements(0, 1);
  EXPECT_EQ(Estimate(reordered).model_shape(), estimate.model_shape());
  v1::JobSpec longer = spec;
  longer.mutable_training()->set_seq_len(32);
  EXPECT_NE(Estimate(longer).model_shape(), estimate.model_shape());
}

TEST(JobEstimatorTest, PastJobsOfTheShapeOnTheAcceleratorSetTheRateElseAColdStartGuesses) {
  TempDir dir;
  const std::string train = dir.Write("train.jsonl", R"({"text": "abcdefgh"})"
                                                     "\n");
  const v1::JobSpec spec = Spec(kTinyModel, train, 1, 1, 0, 100);  // 100 x 10 tokens
  const std::vector<v1::Worker> workers = {Worker("cpu", 3.6, false),
                                           Worker("NVIDIA A100-SXM4-80GB", 2.0, true)};
  const v1::JobEstimate cold = Estimate(spec, workers);
  ASSERT_EQ(cold.tokens_to_train(), 1000);
  ASSERT_THAT(cold.classes(), SizeIs(2));
  for (const v1::WorkerClassEstimate& c : cold.classes()) {
    EXPECT_TRUE(c.cold_start()) << c.accelerator();
    EXPECT_EQ(c.past_jobs(), 0);
    EXPECT_GT(c.tokens_per_second(), 0);
    EXPECT_THAT(c.basis(), AllOf(HasSubstr("cold start"), HasSubstr("6 FLOPs per parameter")));
  }
  // 6 x (4 layers x 196,608 + 259 x 128) FLOPs per token at the CPU's assumed 100 GFLOP/s.
  const double cpu_flops_per_token = 6.0 * (4 * 196608 + 259 * 128);
  const v1::WorkerClassEstimate& cold_cpu =
      cold.classes(0).accelerator() == "cpu" ? cold.classes(0) : cold.classes(1);
  EXPECT_NEAR(cold_cpu.tokens_per_second(), 100e9 / cpu_flops_per_token, 1e-6);
  EXPECT_THAT(cold.notes(), Contains(HasSubstr("A cold start's rate is a FLOPs guess")));

  const std::string shape = cold.model_shape();
  const std::vector<SucceededRun> past = {
      PastRun("9", shape, 4000, {{"cpu", 10}, {"cpu", 10}}, /*scoring_tokens=*/300),
      PastRun("8", "another shape", 1, {{"cpu", 1000}}),
      PastRun("7", shape, 1, {{"cpu", 1000}, {"NVIDIA A100-SXM4-80GB", 1}}),  // two accelerators
      PastRun("6", shape, 1000, {{"cpu", 10}}),
      PastRun("5", shape, 1, {{"cpu", 1000}}),  // beyond max_past_jobs
  };
  EstimatorOptions options;
  options.max_past_jobs = 2;
  const v1::JobEstimate measured = Estimate(spec, workers, past, options);
  const v1::WorkerClassEstimate* cpu = nullptr;
  const v1::WorkerClassEstimate* gpu = nullptr;
  for (const v1::WorkerClassEstimate& c : measured.classes()) {
    (c.accelerator() == "cpu" ? cpu : gpu) = &c;
  }
  ASSERT_NE(cpu, nullptr);
  ASSERT_NE(gpu, nullptr);
  EXPECT_FALSE(cpu->cold_start());
  EXPECT_EQ(cpu->past_jobs(), 2);
  const double tokens_per_second = (4000 + 300 / 3.0 + 1000) / 30.0;
  EXPECT_NEAR(cpu->tokens_per_second(), tokens_per_second, 1e-9);
  EXPECT_NEAR(cpu->seconds(), 1000 / tokens_per_second, 1e-9);
  EXPECT_NEAR(cpu->gpu_hours(), cpu->seconds() / 3600, 1e-12);
  EXPECT_NEAR(cpu->usd(), cpu->gpu_hours() * 3.6, 1e-12);
  EXPECT_THAT(cpu->basis(), AllOf(HasSubstr("measured"), HasSubstr("jobs 9, 6")));
  EXPECT_TRUE(gpu->cold_start()) << "no past job ran on the A100 alone";
  EXPECT_THAT(gpu->basis(), HasSubstr("A100 (312 TFLOP/s bf16 peak)"));
}

TEST(JobEstimatorTest,
     ClassesAreActiveWorkersWithEnoughGpusByAcceleratorPriceAndSpotCheapestFirst) {
  TempDir dir;
  const std::string train = dir.Write("train.jsonl", R"({"text": "abcdefgh"})"
                                                     "\n");
  v1::JobSpec spec = Spec(kTinyModel, train, 1, 1, 0, 100);
  spec.set_gpus(2);
  const std::vector<v1::Worker> workers = {
      Worker("NVIDIA H100 80GB HBM3", 4.0, false, 8),
      Worker("NVIDIA A100-SXM4-80GB", 2.0, false, 8, v1::Worker::BUSY),
      Worker("NVIDIA H100 80GB HBM3", 4.0, false, 2, v1::Worker::BUSY),
      Worker("NVIDIA A100-SXM4-80GB", 2.0, true, 4),
      Worker("NVIDIA A100-SXM4-80GB", 2.0, false, 1),                    // too few GPUs
      Worker("NVIDIA A100-SXM4-80GB", 0.5, false, 8, v1::Worker::LOST),  // not active
      Worker("NVIDIA A100-SXM4-80GB", 0.5, false, 8, v1::Worker::GONE),  // not active
  };
  const v1::JobEstimate estimate = Estimate(spec, workers);
  std::vector<std::string> order;
  for (const v1::WorkerClassEstimate& c : estimate.classes()) {
    order.push_back(absl::StrCat(c.accelerator(), " $", c.price_per_gpu_hour(),
                                 c.spot() ? " spot" : "", " x", c.workers()));
    EXPECT_EQ(c.gpus(), 2);
    EXPECT_NEAR(c.gpu_hours(), c.seconds() * 2 / 3600, 1e-12);
  }
  // H100s are 2.5x as fast at 2x the price: cheaper than the A100s for the same work.
  EXPECT_EQ(absl::StrJoin(order, "; "),
            "NVIDIA H100 80GB HBM3 $4 x2; NVIDIA A100-SXM4-80GB $2 x1; "
            "NVIDIA A100-SXM4-80GB $2 spot x1");
  for (int i = 1; i < estimate.classes_size(); ++i) {
    EXPECT_LE(estimate.classes(i - 1).usd(), estimate.classes(i).usd());
  }
  EXPECT_THAT(estimate.notes(), Contains(HasSubstr("1 active workers have fewer than 2 GPUs")));
  EXPECT_THAT(Estimate(spec, {}).notes(), Contains(HasSubstr("No active worker can run this job")));
}

// Workers alike in accelerator, price, spot and GPUs are one group (the inactive left out), and
// an estimate counts each group's workers into their class, or as too small, all of them.
TEST(JobEstimatorTest, WorkersAlikeAreOneGroupAndAnEstimateCountsEveryWorkerOfIt) {
  TempDir dir;
  const std::string train = dir.Write("train.jsonl", R"({"text": "abcdefgh"})"
                                                     "\n");
  const std::vector<v1::Worker> workers = {
      Worker("NVIDIA L4", 1.0, false, 1),
      Worker("NVIDIA L4", 1.0, false, 4),
      Worker("NVIDIA L4", 1.0, false, 1, v1::Worker::BUSY),
      Worker("NVIDIA L4", 1.0, true, 4, v1::Worker::BUSY),
      Worker("NVIDIA L4", 1.0, false, 4),
      Worker("NVIDIA L4", 1.0, false, 4, v1::Worker::LOST),
      Worker("NVIDIA L4", 1.0, false, 1),
  };
  const std::vector<WorkerGroup> groups = GroupActiveWorkers(workers);
  std::vector<std::string> listed;
  for (const WorkerGroup& group : groups) {
    listed.push_back(absl::StrCat(group.accelerator, " $", group.price_per_gpu_hour,
                                  group.spot ? " spot" : "", " ", group.gpus, " GPUs x",
                                  group.workers));
  }
  EXPECT_EQ(absl::StrJoin(listed, "; "),
            "NVIDIA L4 $1 1 GPUs x3; NVIDIA L4 $1 4 GPUs x2; NVIDIA L4 $1 spot 4 GPUs x1");

  v1::JobSpec spec = Spec(kTinyModel, train, 1, 1, 0, 100);
  spec.set_gpus(2);
  const v1::JobEstimate estimate = Estimate(spec, workers);
  std::vector<std::string> classes;
  for (const v1::WorkerClassEstimate& c : estimate.classes()) {
    classes.push_back(absl::StrCat(c.accelerator(), c.spot() ? " spot" : "", " x", c.workers()));
  }
  EXPECT_THAT(classes, ::testing::UnorderedElementsAre("NVIDIA L4 x2", "NVIDIA L4 spot x1"));
  EXPECT_THAT(estimate.notes(), Contains(HasSubstr("3 active workers have fewer than 2 GPUs")));
}

// A copy of models/tiny-llama's config and byte tokenizer (the weights are not read) in `dir`.
std::string CopyTinyModel(const TempDir& dir) {
  for (const char* name : {"config.json", "byte_tokenizer.json"}) {
    fs::create_directories(dir.File("model"));
    fs::copy_file(fs::path(kTinyModel) / name, dir.File(std::string("model/") + name),
                  fs::copy_options::overwrite_existing);
  }
  return dir.File("model");
}

// With a file cache, a second estimate of the same files reads nothing again and says exactly
// what an uncached one says; a rewritten train file, a changed config.json and a file added to the
// model folder are each read again.
TEST(EstimateFileCacheTest, UnchangedFilesAreReadOnceAndChangedOnesAgain) {
  TempDir dir;
  const std::string model = CopyTinyModel(dir);
  const std::string train = dir.Write("train.jsonl", kMixedData);
  const v1::JobSpec spec = Spec(model, train, 4, 2, 3, 0, 48);
  EstimateFileCache cache;
  EstimatorOptions cached;
  cached.file_cache = &cache;
  auto same = [](const v1::JobEstimate& a, const v1::JobEstimate& b) {
    return a.SerializeAsString() == b.SerializeAsString();
  };

  const v1::JobEstimate first = Estimate(spec, {}, {}, cached);
  EXPECT_TRUE(same(first, Estimate(spec))) << first.ShortDebugString();
  EXPECT_EQ(cache.models.misses(), 1);
  EXPECT_EQ(cache.data.misses(), 1);
  EXPECT_TRUE(same(Estimate(spec, {}, {}, cached), first));
  EXPECT_EQ(cache.models.hits(), 1);
  EXPECT_EQ(cache.data.hits(), 1);

  // The train file rewritten with more examples.
  dir.Write("train.jsonl", std::string(kMixedData) + R"({"text": "one more example"})" + "\n");
  const v1::JobEstimate more = Estimate(spec, {}, {}, cached);
  EXPECT_EQ(more.examples(), first.examples() + 1);
  EXPECT_TRUE(same(more, Estimate(spec)));
  EXPECT_EQ(cache.data.misses(), 2);
  EXPECT_EQ(cache.models.hits(), 2) << "the model folder did not change";

  // config.json rewritten: a wider model.
  std::string config;
  {
    std::ifstream in(fs::path(model) / "config.json");
    config.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string hidden = R"("hidden_size": )";
  const size_t at = config.find(hidden);
  ASSERT_NE(at, std::string::npos) << config;
  const size_t end = config.find_first_of(",}", at);
  dir.Write("model/config.json", config.substr(0, at) + hidden + "1024" + config.substr(end));
  const v1::JobEstimate wider = Estimate(spec, {}, {}, cached);
  EXPECT_GT(wider.model_params(), first.model_params());
  EXPECT_TRUE(same(wider, Estimate(spec)));
  EXPECT_EQ(cache.models.misses(), 2);

  // A file added to the folder (a tokenizer.json would change the tokenizer) is a new folder.
  dir.Write("model/README.md", "---\nlicense: mit\n---\n");
  Estimate(spec, {}, {}, cached);
  EXPECT_EQ(cache.models.misses(), 3);
  EXPECT_EQ(cache.data.misses(), 4) << "the count depends on the folder's tokenizer too";
}

TEST(JobEstimatorTest, AssumedFlopsMatchTheLongestNameFirst) {
  std::string assumption;
  EXPECT_EQ(AssumedFlopsPerSecond("NVIDIA A100-SXM4-80GB", &assumption), 100e12);
  EXPECT_THAT(assumption, HasSubstr("A100"));
  EXPECT_EQ(AssumedFlopsPerSecond("NVIDIA A10G"), 30e12);
  EXPECT_EQ(AssumedFlopsPerSecond("NVIDIA L40S"), 90e12);
  EXPECT_EQ(AssumedFlopsPerSecond("NVIDIA L4"), 30e12);
  EXPECT_EQ(AssumedFlopsPerSecond("CPU"), 100e9);
  EXPECT_EQ(AssumedFlopsPerSecond("gpu", &assumption), 50e12);
  EXPECT_THAT(assumption, HasSubstr("not in the estimator's table"));
}

}  // namespace
}  // namespace tuneledger
