// trainer_step_bench: training throughput of one LoRA step of the trainer's model on the CPU
// (fp32, torch intra-op threads = cores), next to the machine's fp32 GEMM peak. The eager
// PyTorch baseline of the same step is bench/reference/eager_lora_step.py (run it right after
// this, so both see the same machine load).
//
//   BM_GemmFp32/n:2048             one [n,n] x [n,n] fp32 matmul; counter FLOPS (the peak)
//   BM_LoraTrainStep/tiny          the bundled tiny model (models/tiny_llama_config.json) with
//                                  the demo job's LoRA (r 8 on all seven projections) and shape
//                                  (batch 16 x seq 128)
//   BM_LoraTrainStep/llama110m     a ~110M Llama (D 768, 12 layers, 12 heads, F 2048, V 32000),
//                                  batch 8 x seq 256, LoRA r 16 on q,k,v,o. Only with --llama110m
//                                  (an iteration is a step of 2,048 tokens: ~15 s on 2 cores)
//
// A step is what the recipe's ForwardBackward + OptimizerStep do for one micro-batch: forward
// in train mode (LoRA dropout on), mean next-token cross-entropy, backward, global-norm clip
// at 1.0, AdamW (lr 2e-4, betas 0.9/0.999, eps 1e-8, no decay) on the LoRA parameters. The batch
// is fixed random token ids (data loading is not part of a step). One untimed warm-up step
// (first-touch allocations, AdamW state) precedes the timed ones.
//
// Counters per step case:
//   items_per_second  tokens/s (batch x seq per step)
//   FLOPS             model FLOPs/s: tokens/s x ModelFlopsPerToken() (formula below)
//   of_gemm_peak      FLOPS / the GEMM peak measured in this process
//   peak_rss_MiB      peak resident memory of this case alone (see bench/peak_rss.h)
//
// Flags (before Google Benchmark's own): --llama110m  add the 110M case; --steps=N  timed
// steps of the 110M case (default 3); --threads=N  torch threads (default: cores);
// --malloc_defaults  keep glibc's malloc settings (by default the bench sets those of
// worker/trainer/recipe/host_allocator.h, as tuneledger-train does on the CPU).
#include <benchmark/benchmark.h>
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/peak_rss.h"
#include "lm/model_config.h"
#include "lm/trainer_error.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/lora_linear.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/recipe/host_allocator.h"

namespace tuneledger::bench {
namespace {

using train::LlamaConfig;
using train::LlamaForCausalLM;
using train::LoraOptions;

constexpr int64_t kGemmSize = 2048;
constexpr double kLearningRate = 2e-4;
constexpr double kMaxGradNorm = 1.0;
constexpr uint64_t kSeed = 1234;

struct StepCase {
  std::string name;
  LlamaConfig config;
  int64_t batch = 0;  // B
  int64_t seq = 0;    // T
  LoraOptions lora;
  int64_t iterations = 0;  // 0: Google Benchmark decides (--benchmark_min_time)
};

// The training FLOPs of one token of a LoRA step, counting matmuls only (norms, RoPE, softmax,
// the loss and the optimizer are a few percent and left out):
//   frozen base projections (and lm_head), P weights: forward 2P + input gradient 2P = 4P
//     (no weight gradient: the base is frozen)
//   LoRA A and B, P_lora weights: forward, input gradient and weight gradient = 6 P_lora
//   attention scores and weighted values: 4 T H Dh per layer forward (counted as the full T x T
//     product, as the plain kernel computes it), twice that backward = 12 T H Dh per layer
double ModelFlopsPerToken(const StepCase& step_case) {
  const LlamaConfig& c = step_case.config;
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  struct Projection {
    const char* name;
    int64_t in, out;
  };
  const Projection projections[] = {
      {"q_proj", c.hidden_size, q_out},
      {"k_proj", c.hidden_size, kv_out},
      {"v_proj", c.hidden_size, kv_out},
      {"o_proj", q_out, c.hidden_size},
      {"gate_proj", c.hidden_size, c.intermediate_size},
      {"up_proj", c.hidden_size, c.intermediate_size},
      {"down_proj", c.intermediate_size, c.hidden_size},
  };
  double base = static_cast<double>(c.vocab_size) * c.hidden_size;  // lm_head
  double lora = 0;
  for (const Projection& p : projections) {
    base += static_cast<double>(p.in) * p.out * c.num_hidden_layers;
    if (train::IsLoraTarget(step_case.lora, p.name)) {
      lora += static_cast<double>(step_case.lora.r) * (p.in + p.out) * c.num_hidden_layers;
    }
  }
  const double attention =
      12.0 * step_case.seq * c.num_attention_heads * c.head_dim * c.num_hidden_layers;
  return 4 * base + 6 * lora + attention;
}

// FLOP/s of one [n,n] x [n,n] fp32 matmul, the best of `reps` (after one warm-up).
double MeasureGemmFlops(int64_t n, int reps) {
  torch::NoGradGuard no_grad;
  const torch::Tensor a = torch::randn({n, n});  // [n,n]
  const torch::Tensor b = torch::randn({n, n});  // [n,n]
  torch::Tensor c = torch::empty({n, n});        // [n,n]
  torch::mm_out(c, a, b);
  double best_seconds = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    best_seconds =
        std::min(best_seconds,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 2.0 * n * n * n / best_seconds;
}

// The GEMM peak of this process, measured once (of_gemm_peak divides by it).
double GemmPeakFlops() {
  static const double peak = MeasureGemmFlops(kGemmSize, 5);
  return peak;
}

void BM_GemmFp32(benchmark::State& state) {
  const int64_t n = state.range(0);
  torch::NoGradGuard no_grad;
  const torch::Tensor a = torch::randn({n, n});  // [n,n]
  const torch::Tensor b = torch::randn({n, n});  // [n,n]
  torch::Tensor c = torch::empty({n, n});        // [n,n]
  torch::mm_out(c, a, b);                        // warm-up
  for (auto _ : state) torch::mm_out(c, a, b);
  state.counters["FLOPS"] =
      benchmark::Counter(2.0 * n * n * n * state.iterations(), benchmark::Counter::kIsRate);
}

// One LoRA training step on `input_ids` (labels = the same ids, shifted inside).
// input_ids [B,T] int64.
void TrainStep(LlamaForCausalLM& model, torch::optim::AdamW& optimizer,
               const std::vector<torch::Tensor>& trainable, const torch::Tensor& input_ids) {
  const int64_t vocab = model->config().vocab_size;
  const int64_t tokens = input_ids.size(1);
  optimizer.zero_grad();
  const torch::Tensor logits = model->forward(input_ids);            // [B,T,V]
  const torch::Tensor predicted = logits.narrow(1, 0, tokens - 1);   // [B,T-1,V]
  const torch::Tensor targets = input_ids.narrow(1, 1, tokens - 1);  // [B,T-1]
  const torch::Tensor loss = torch::nn::functional::cross_entropy(predicted.reshape({-1, vocab}),
                                                                  targets.reshape({-1}));  // scalar
  loss.backward();
  torch::nn::utils::clip_grad_norm_(trainable, kMaxGradNorm);
  optimizer.step();
}

void RunStepCase(benchmark::State& state, const StepCase& step_case) {
  const bool own_peak = ResetPeakRss();
  torch::manual_seed(kSeed);  // LoRA A init and dropout masks
  LlamaForCausalLM model =
      train::CreateRandom(step_case.config, train::ModelOptions{}, kSeed, &step_case.lora);
  model->train();
  const std::vector<torch::Tensor> trainable = model->TrainableParameters();
  torch::optim::AdamW optimizer(
      trainable,
      torch::optim::AdamWOptions(kLearningRate).betas({0.9, 0.999}).eps(1e-8).weight_decay(0));
  const torch::Tensor input_ids = torch::randint(
      step_case.config.vocab_size, {step_case.batch, step_case.seq}, torch::kInt64);  // [B,T]

  TrainStep(model, optimizer, trainable, input_ids);  // warm-up
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) TrainStep(model, optimizer, trainable, input_ids);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const double tokens = static_cast<double>(state.iterations() * step_case.batch * step_case.seq);
  state.SetItemsProcessed(static_cast<int64_t>(tokens));
  const double flops = tokens * ModelFlopsPerToken(step_case);
  state.counters["FLOPS"] = benchmark::Counter(flops, benchmark::Counter::kIsRate);
  state.counters["of_gemm_peak"] = flops / seconds / GemmPeakFlops();
  int64_t trainable_count = 0;
  for (const torch::Tensor& p : trainable) trainable_count += p.numel();
  state.counters["lora_params"] = static_cast<double>(trainable_count);
  if (const std::optional<int64_t> peak = PeakRssBytes(); peak.has_value()) {
    state.counters["peak_rss_MiB"] = static_cast<double>(*peak) / (1 << 20);
  }
  if (!own_peak) state.SetLabel("peak RSS covers the whole process (clear_refs refused)");
}

void BM_LoraTrainStep(benchmark::State& state, const StepCase& step_case) {
  try {
    RunStepCase(state, step_case);
  } catch (const c10::Error& error) {
    state.SkipWithError(error.what_without_backtrace());
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}

LlamaConfig Llama110mConfig() {
  return LlamaConfig::FromJson(nlohmann::json{
      {"model_type", "llama"},
      {"vocab_size", 32000},
      {"hidden_size", 768},
      {"intermediate_size", 2048},
      {"num_hidden_layers", 12},
      {"num_attention_heads", 12},
      {"num_key_value_heads", 12},
      {"hidden_act", "silu"},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 10000.0},
      {"max_position_embeddings", 2048},
      {"tie_word_embeddings", false},
  });
}

struct Flags {
  bool llama110m = false;
  int64_t steps = 3;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  bool malloc_defaults = false;
};

// Takes this benchmark's own flags out of argv (Google Benchmark rejects flags it does not know).
std::optional<Flags> ParseOwnFlags(int* argc, char** argv) {
  Flags flags;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    try {
      if (arg == "--llama110m") {
        flags.llama110m = true;
      } else if (arg == "--malloc_defaults") {
        flags.malloc_defaults = true;
      } else if (arg.rfind("--steps=", 0) == 0) {
        flags.steps = std::stoll(arg.substr(8));
      } else if (arg.rfind("--threads=", 0) == 0) {
        flags.threads = std::stoi(arg.substr(10));
      } else {
        argv[kept++] = argv[i];
        continue;
      }
    } catch (const std::exception&) {
      std::cerr << "trainer_step_bench: bad value in " << arg << "\n";
      return std::nullopt;
    }
  }
  *argc = kept;
  if (flags.steps < 1 || flags.threads < 1) {
    std::cerr << "trainer_step_bench: --steps and --threads must be >= 1\n";
    return std::nullopt;
  }
  return flags;
}

void RegisterBenchmarks(const Flags& flags) {
  benchmark::RegisterBenchmark("BM_GemmFp32", BM_GemmFp32)
      ->ArgName("n")
      ->Arg(kGemmSize)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);

  StepCase tiny;
  tiny.name = "BM_LoraTrainStep/tiny";
  tiny.config =
      LlamaConfig::FromFile(std::string(TUNELEDGER_SOURCE_DIR) + "/models/tiny_llama_config.json");
  tiny.batch = 16;
  tiny.seq = 128;
  tiny.lora.r = 8;
  tiny.lora.alpha = 16;
  tiny.lora.dropout = 0.05;
  tiny.lora.target_modules = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                              "gate_proj", "up_proj", "down_proj"};
  std::vector<StepCase> cases = {tiny};
  if (flags.llama110m) {
    StepCase large;
    large.name = "BM_LoraTrainStep/llama110m";
    large.config = Llama110mConfig();
    large.batch = 8;
    large.seq = 256;
    large.lora.r = 16;
    large.lora.alpha = 32;
    large.lora.dropout = 0.1;
    large.lora.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj"};
    large.iterations = flags.steps;
    cases.push_back(large);
  }
  for (const StepCase& step_case : cases) {
    benchmark::internal::Benchmark* registered = benchmark::RegisterBenchmark(
        step_case.name.c_str(),
        [step_case](benchmark::State& state) { BM_LoraTrainStep(state, step_case); });
    registered->UseRealTime()->Unit(benchmark::kMillisecond);
    if (step_case.iterations > 0) registered->Iterations(step_case.iterations);
  }
}

}  // namespace
}  // namespace tuneledger::bench

int main(int argc, char** argv) {
  using namespace tuneledger::bench;  // NOLINT(build/namespaces): main only
  const std::optional<Flags> flags = ParseOwnFlags(&argc, argv);
  if (!flags.has_value()) return 2;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  const bool host_buffers_kept =
      !flags->malloc_defaults && tuneledger::train::KeepHostBuffersForReuse();
  benchmark::AddCustomContext("host_buffers_kept_for_reuse", host_buffers_kept ? "yes" : "no");
  try {
    at::set_num_threads(flags->threads);
    RegisterBenchmarks(*flags);
    benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
    benchmark::AddCustomContext("gemm_peak_GFLOPS", std::to_string(GemmPeakFlops() / 1e9));
  } catch (const c10::Error& error) {
    std::cerr << "trainer_step_bench: " << error.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "trainer_step_bench: " << error.what() << "\n";
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
