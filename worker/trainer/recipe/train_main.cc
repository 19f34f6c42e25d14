// tuneledger-train: LoRA fine-tuning of a Llama-family model, as a recipe.
//
//   load spec -> threads, seed -> tokenizer + data -> model -> read checkpoint, data selection
//   -> optimizer + schedule -> restore checkpoint -> loop of named steps -> adapter (+ merged
//   model) -> done
//
// The command line, output folder, exit codes and progress lines are PROGRESS_PROTOCOL.md.
// main() is the trainer's edge: RunReportingErrors (progress_reporter.h) turns a TrainError,
// c10::Error or std::exception escaping Run() into an `error` line and exit code 1.
#include <ATen/Parallel.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/command_line.h"
#include "base/work_dir_layout.h"
#include "lm/data/jsonl_dataset.h"
#include "lm/model_config.h"
#include "lm/trainer_error.h"
#include "worker/trainer/model/generation.h"
#include "worker/trainer/model/llama_model.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/model/peft_adapter.h"
#include "worker/trainer/recipe/batcher.h"
#include "worker/trainer/recipe/checkpoint_io.h"
#include "worker/trainer/recipe/data_parallel.h"
#include "worker/trainer/recipe/data_selection.h"
#include "worker/trainer/recipe/host_allocator.h"
#include "worker/trainer/recipe/loss_scaler.h"
#include "worker/trainer/recipe/lr_schedule.h"
#include "worker/trainer/recipe/optimizer_setup.h"
#include "worker/trainer/recipe/progress_reporter.h"
#include "worker/trainer/recipe/stop_signal.h"
#include "worker/trainer/recipe/tokenizer.h"
#include "worker/trainer/recipe/train_loop.h"
#include "worker/trainer/spec/job_spec.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitStopped = 75;
constexpr int kKeepCheckpoints = 3;

constexpr const char* kUsage =
    "usage: tuneledger-train --spec FILE --out DIR [--resume-from CHECKPOINT_DIR]\n"
    "                        [--init-adapter ADAPTER_DIR] [--device auto|cpu|cuda] [--threads N]\n"
    "                        [--rank R --world-size N --rendezvous HOST:PORT]\n"
    "       tuneledger-train --version   LibTorch version, CUDA backend, visible GPUs\n"
    "  Fine-tunes a LoRA adapter as the JobSpec JSON in FILE says; writes checkpoints and\n"
    "  the PEFT adapter under DIR and one JSON progress line per event on stdout.\n"
    "  Rerunning with the same --out resumes from its newest checkpoint.\n"
    "  --init-adapter starts the LoRA weights from a PEFT adapter folder (same r, alpha and\n"
    "  target modules as the spec) instead of PEFT's default init; a checkpoint, when one is\n"
    "  resumed, takes precedence.\n"
    "  --world-size N > 1 trains data-parallel (LibTorch c10d: Gloo on CPU, NCCL on CUDA): start\n"
    "  N processes with the same spec and --out, ranks 0..N-1; rank 0 listens on --rendezvous's\n"
    "  port, writes every file and prints the progress lines; training.batch_size is the global\n"
    "  batch, split across the ranks.\n"
    "  Protocol: worker/trainer/PROGRESS_PROTOCOL.md\n"
    "environment:\n"
    "  TUNELEDGER_TRAIN_MIN_STEP_SECONDS=S  make every optimizer step (and data selection\n"
    "      scoring batch) last at least S seconds (sleeping after it): tests and demos that must\n"
    "      see a job mid-run on any machine.\n";

// TUNELEDGER_TRAIN_MIN_STEP_SECONDS, 0 when unset. A bad value is an error, not ignored.
std::chrono::duration<double> MinStepDuration() {
  const char* text = std::getenv("TUNELEDGER_TRAIN_MIN_STEP_SECONDS");
  if (text == nullptr || *text == '\0') return std::chrono::duration<double>(0);
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(seconds) || seconds < 0 || seconds > 3600) {
    throw TrainError(std::string("TUNELEDGER_TRAIN_MIN_STEP_SECONDS must be a number of seconds "
                                 "in [0, 3600], got \"") +
                     text + "\"");
  }
  return std::chrono::duration<double>(seconds);
}

struct Flags {
  std::string spec;
  std::string out;
  std::string resume_from;
  std::string init_adapter;
  std::string device = "auto";
  int threads = 0;  // 0 = the machine's cores
  RankOptions ranks;
  bool help = false;
  bool version = false;
};

// The command line (base/command_line.h); "" or the problem.
std::string ParseFlags(const std::vector<std::string>& args, Flags& flags) {
  CommandLineHandlers handlers;
  handlers.kind = [](std::string_view name) -> std::optional<FlagKind> {
    if (name == "help" || name == "version") return FlagKind::kSwitch;
    for (const char* value_flag : {"spec", "out", "resume-from", "init-adapter", "device",
                                   "threads", "rank", "world-size", "rendezvous"}) {
      if (name == value_flag) return FlagKind::kValue;
    }
    return std::nullopt;
  };
  handlers.apply = [&](std::string_view name, const std::string& value) -> std::string {
    if (name == "help") {
      flags.help = value == "true";
    } else if (name == "version") {
      flags.version = value == "true";
    } else if (name == "spec") {
      flags.spec = value;
    } else if (name == "out") {
      flags.out = value;
    } else if (name == "resume-from") {
      flags.resume_from = value;
    } else if (name == "init-adapter") {
      flags.init_adapter = value;
    } else if (name == "device") {
      if (value != "auto" && value != "cpu" && value != "cuda") {
        return "must be auto, cpu or cuda, got '" + value + "'";
      }
      flags.device = value;
    } else if (name == "threads") {
      const std::optional<int64_t> threads = ParseIntFlag(value, 1, 4096);
      if (!threads) return "must be a positive integer, got '" + value + "'";
      flags.threads = static_cast<int>(*threads);
    } else if (name == "rank" || name == "world-size") {
      const std::optional<int64_t> number = ParseIntFlag(value, name == "rank" ? 0 : 1, 4096);
      if (!number)
        return "must be an integer in [" + std::string(name == "rank" ? "0" : "1") +
               ", 4096], got '" + value + "'";
      (name == "rank" ? flags.ranks.rank : flags.ranks.world_size) = static_cast<int>(*number);
    } else if (name == "rendezvous") {
      flags.ranks.rendezvous = value;
    }
    return "";
  };
  if (std::string problem = ParseCommandLine(args, handlers); !problem.empty()) return problem;
  if (!flags.help && !flags.version && (flags.spec.empty() || flags.out.empty())) {
    return "--spec and --out are required";
  }
  if (flags.ranks.rank >= flags.ranks.world_size) {
    return "--rank must be below --world-size (" + std::to_string(flags.ranks.world_size) + ")";
  }
  if (flags.ranks.world_size > 1 && flags.ranks.rendezvous.empty()) {
    return "--world-size above 1 needs --rendezvous HOST:PORT";
  }
  return "";
}

// What this binary runs on: {"libtorch": "2.15.0", "cuda_backend": true, "cuda_devices": 0}.
// The CUDA backend is linked when the build had nvcc (worker/trainer/libtorch.cmake); it
// registers its device guard when its library loads, GPU or not.
std::string VersionLine() {
  return nlohmann::json{{"libtorch", TORCH_VERSION},
                        {"cuda_backend", c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA)},
                        {"cuda_devices", torch::cuda::device_count()}}
      .dump();
}

torch::Device ResolveDevice(const std::string& requested) {
  if (requested == "cuda" && !torch::cuda::is_available()) {
    throw TrainError("--device cuda: no CUDA device is available to this LibTorch");
  }
  if (requested == "cuda" || (requested == "auto" && torch::cuda::is_available())) {
    return torch::Device(torch::kCUDA, 0);
  }
  return torch::kCPU;
}

// Unspecified precision: bf16 on GPUs, fp32 on CPU (bf16 GEMM is ~30x slower there).
Precision ResolvePrecision(Precision requested, const torch::Device& device) {
  if (requested != Precision::kUnspecified) return requested;
  return device.is_cuda() ? Precision::kBf16 : Precision::kFp32;
}

torch::Dtype BaseDtype(Precision precision) {
  switch (precision) {
    case Precision::kBf16:
      return torch::kBFloat16;
    case Precision::kFp16:
      return torch::kFloat16;
    default:
      return torch::kFloat32;
  }
}

// The stored dtype of the base model, for the merged model.
torch::Dtype StorageDtype(const LlamaConfig& config) {
  if (config.torch_dtype == "bfloat16") return torch::kBFloat16;
  if (config.torch_dtype == "float16") return torch::kFloat16;
  return torch::kFloat32;
}

// Optimizer steps of the job: max_steps, or epochs x ceil(batches per epoch / accumulation)
// (an optimizer step never spans two epochs, train_loop.h).
int64_t TotalSteps(const TrainJobSpec& spec, int64_t batches_per_epoch) {
  if (spec.max_steps > 0) return spec.max_steps;
  const int64_t per_epoch = (batches_per_epoch + spec.grad_accum_steps - 1) / spec.grad_accum_steps;
  return std::max<int64_t>(1, per_epoch * spec.epochs);
}

// What a checkpoint must agree on to be resumed by this job.
std::string Fingerprint(const TrainJobSpec& spec, const LlamaConfig& config,
                        const TokenizedDataset& train, int64_t total_steps) {
  return nlohmann::json{{"lora_r", spec.lora_r},
                        {"lora_alpha", spec.lora_alpha},
                        {"lora_dropout", spec.lora_dropout},
                        {"target_modules", spec.target_modules},
                        {"batch_size", spec.batch_size},
                        {"grad_accum_steps", spec.grad_accum_steps},
                        {"seq_len", spec.seq_len},
                        {"seed", spec.seed},
                        {"total_steps", total_steps},
                        {"train_examples", train.examples.size()},
                        {"vocab_size", config.vocab_size},
                        {"hidden_size", config.hidden_size},
                        {"num_hidden_layers", config.num_hidden_layers}}
      .dump();
}

void PrintSample(const char* when, LlamaForCausalLM& model, const Tokenizer& tokenizer,
                 const TrainJobSpec& spec) {
  const std::vector<int64_t> prompt = PromptIds(tokenizer, spec.sample_prompt);
  if (prompt.empty()) return;  // nothing to condition on (no BOS, prompt encodes to nothing)
  const std::vector<int64_t> generated =
      GreedyGenerate(model, prompt, spec.sample_max_tokens, tokenizer.eos_id());
  std::cerr << "sample " << when << " training:\n"
            << spec.sample_prompt << "[" << tokenizer.Decode(generated) << "]\n";
}

std::string Absolute(const fs::path& path) {
  return fs::absolute(path).lexically_normal().string();
}

// The model's chat template for "messages" data, set in `options` and named on stderr. A template
// this trainer cannot run fails "messages" lines only (with its reason), not a job whose data
// has none; a model without one keeps the built-in template.
std::unique_ptr<HfChatTemplate> LoadChatTemplate(const std::string& model_path,
                                                 DatasetOptions& options) {
  std::unique_ptr<HfChatTemplate> chat_template;
  try {
    chat_template = HfChatTemplate::FromModelDir(model_path);
  } catch (const TrainError& e) {
    options.chat_template_error = e.what();
    std::cerr << "chat template for \"messages\" data: unusable, \"messages\" lines will fail: "
              << e.what() << "\n";
    return nullptr;
  }
  options.chat_template = chat_template.get();
  std::cerr << "chat template for \"messages\" data: "
            << (chat_template ? chat_template->where() : "built-in (chat_template.h)") << "\n";
  return chat_template;
}

int Run(const Flags& flags, ProgressReporter& reporter) {
  const std::chrono::duration<double> min_step = MinStepDuration();  // checked before loading
  const auto process_start = std::chrono::steady_clock::now();
  InstallStopSignalHandlers();

  // 1. Spec, threads, device, seed.
  const TrainJobSpec spec = LoadJobSpec(flags.spec);
  const int threads =
      flags.threads > 0 ? flags.threads : std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  const torch::Device device = ResolveDevice(flags.device);
  if (device.is_cpu() && !KeepHostBuffersForReuse()) {
    std::cerr << "tuneledger-train: glibc refused the malloc settings of host_allocator.h; the "
                 "CPU step allocates fresh pages for its large buffers\n";
  }
  const Precision precision = ResolvePrecision(spec.precision, device);
  torch::manual_seed(static_cast<uint64_t>(spec.seed));
  std::cerr << "tuneledger-train: " << threads << " threads, device " << device.str()
            << ", precision " << PrecisionName(precision);
  if (flags.ranks.world_size > 1) {
    std::cerr << ", rank " << flags.ranks.rank << " of " << flags.ranks.world_size;
  }
  std::cerr << "\n";

  // 2. Tokenizer and data.
  const LlamaConfig config =
      LlamaConfig::FromFile((fs::path(spec.model_path) / "config.json").string());
  config.CheckSequenceLength(spec.seq_len);
  const std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer(spec.model_path);
  DatasetOptions data_options{spec.seq_len, config.vocab_size};
  const std::unique_ptr<HfChatTemplate> chat_template =
      LoadChatTemplate(spec.model_path, data_options);
  const TokenizedDataset train = LoadJsonlDataset(spec.train_path, *tokenizer, data_options);
  std::optional<TokenizedDataset> valid;
  if (!spec.valid_path.empty()) valid = LoadJsonlDataset(spec.valid_path, *tokenizer, data_options);
  std::cerr << "data: " << train.examples.size() << " training examples (" << train.truncated
            << " truncated to " << spec.seq_len << " tokens, " << train.dropped_no_targets
            << " dropped without targets)"
            << (valid ? ", " + std::to_string(valid->examples.size()) + " validation" : "") << "\n";

  // 3. Model.
  const LoraOptions lora{spec.lora_r, spec.lora_alpha, spec.lora_dropout, spec.target_modules};
  ModelOptions model_options;
  model_options.base_dtype = BaseDtype(precision);
  // bf16/fp16 activations end to end on GPUs; on CPU fp32, the fast arithmetic there.
  model_options.activation_dtype = device.is_cuda() ? model_options.base_dtype : torch::kFloat32;
  model_options.gradient_checkpointing = spec.gradient_checkpointing;
  model_options.quantize_base = spec.quantize_base;
  LlamaForCausalLM model = LoadPretrained(spec.model_path, &lora, model_options, device);
  if (spec.quantize_base != quant::BaseQuantization::kNone) {
    std::cerr << "base: decoder projections quantized to "
              << quant::BaseQuantizationName(spec.quantize_base) << "\n";
  }

  // The other ranks, once this one has what is slow to load (data_parallel.h).
  DataParallel data_parallel(flags.ranks, device);
  const bool primary = data_parallel.is_primary();

  // 4. The checkpoint to resume (this attempt's own newest, else --resume-from) and the data
  // selection: a resumed run trains on the examples its checkpoint kept; a fresh run with a
  // method scores them now, before --init-adapter, so that the fresh adapter (B = 0) adds nothing
  // to the base model's scores (data_selection.h).
  const std::string checkpoint_root = Absolute(layout::CheckpointsDir(flags.out));
  std::optional<std::string> resume = FindLatestCheckpoint(checkpoint_root);
  if (!resume && !flags.resume_from.empty()) resume = Absolute(flags.resume_from);
  std::optional<TrainSnapshot> snapshot;
  if (resume) snapshot = ReadCheckpoint(*resume);
  std::optional<DataSelectionState> selection;
  if (snapshot) {
    CheckResumedSelection(*resume, snapshot->data_selection, spec.selection_method,
                          spec.keep_fraction, static_cast<int64_t>(train.examples.size()));
    selection = snapshot->data_selection;
  } else if (spec.selection_method != SelectionMethod::kNone) {
    DataSelectionJob job;
    job.scoring = {spec.selection_method, spec.batch_size, tokenizer->pad_id(), device};
    job.keep_fraction = spec.keep_fraction;
    if (primary) job.output_path = Absolute(layout::DataSelectionPath(flags.out));
    job.process_start = process_start;
    job.min_batch_duration = min_step;
    selection = SelectTrainingExamples(model, train, job, reporter);
    if (!selection) {
      // Nothing was trained yet and nothing is lost but the scores: the next attempt scores
      // again (PROGRESS_PROTOCOL.md).
      reporter.Stopped(0, "");
      std::cerr << "stopped during data selection scoring; no checkpoint\n";
      return kExitStopped;
    }
  }
  const std::vector<TokenizedExample> kept_examples =
      selection ? KeptExamples(train.examples, selection->kept) : std::vector<TokenizedExample>{};
  const std::vector<TokenizedExample>& train_examples = selection ? kept_examples : train.examples;
  if (selection) {
    std::cerr << "data selection: training on " << kept_examples.size() << " of "
              << train.examples.size() << " examples (the highest " << selection->method
              << " scores, keep_fraction " << selection->keep_fraction << ")\n";
  }
  if (!flags.init_adapter.empty()) {
    InitLoraFromAdapter(model, lora, flags.init_adapter);
    std::cerr << "LoRA weights from " << flags.init_adapter << "\n";
  }

  // 5. Optimizer, batches, schedule.
  TrainLoopParts parts;
  parts.model = model;
  for (auto& [name, parameter] : model->NamedLoraParameters()) {
    parts.parameter_names.push_back(name);
    parts.parameters.push_back(parameter);
  }
  const auto optimizer = MakeAdamW(parts.parameters, spec.learning_rate, spec.weight_decay);
  LengthGroupedBatcher batcher(train_examples, spec.batch_size, spec.seed, tokenizer->pad_id());
  const std::vector<Batch> eval_batches =
      valid ? MakeEvalBatches(valid->examples, spec.batch_size, tokenizer->pad_id())
            : std::vector<Batch>{};
  const int64_t total_steps = TotalSteps(spec, batcher.batches_per_epoch());
  const LrSchedule schedule(spec.lr_schedule, spec.learning_rate, spec.warmup_steps, total_steps);
  DynamicLossScaler loss_scaler(precision == Precision::kFp16);
  parts.optimizer = optimizer.get();
  parts.schedule = &schedule;
  parts.loss_scaler = &loss_scaler;
  parts.batcher = &batcher;
  parts.eval_batches = &eval_batches;
  parts.reporter = &reporter;
  parts.data_parallel = &data_parallel;

  TrainLoopOptions options;
  options.total_steps = total_steps;
  options.grad_accum_steps = spec.grad_accum_steps;
  options.max_grad_norm = spec.max_grad_norm;
  options.eval_every_steps = spec.eval_every_steps;
  options.checkpoint_every_steps = spec.checkpoint_every_steps;
  options.checkpoint_root = checkpoint_root;
  options.keep_checkpoints = kKeepCheckpoints;
  options.fingerprint = Fingerprint(spec, config, train, total_steps);
  options.device = device;
  options.seed = spec.seed;
  options.process_start = process_start;
  options.patience_evals = spec.patience_evals;
  options.min_delta = spec.min_delta;
  options.divergence_factor = spec.divergence_factor;
  options.data_selection = selection;
  TrainLoop loop(parts, options);

  // 6. Restore the checkpoint read in 4.
  if (snapshot) {
    loop.Restore(*snapshot, *resume);
    std::cerr << "resumed from " << *resume << " at step " << loop.state().step << "\n";
  }
  // Every rank starts from rank 0's parameters (the same seed or checkpoint gives the same ones;
  // this makes it so whatever a rank's loading did).
  data_parallel.Broadcast(parts.parameters);
  const int64_t start_step = loop.state().step;
  const int64_t total_params = model->ParameterCount();
  int64_t trainable_params = 0;
  for (const auto& parameter : parts.parameters) trainable_params += parameter.numel();
  reporter.Started({total_steps, start_step, trainable_params, total_params,
                    device.is_cuda() ? "cuda" : "cpu", PrecisionName(precision)});
  if (primary && !spec.sample_prompt.empty() && start_step == 0) {
    PrintSample("before", model, *tokenizer, spec);
  }
  if (loop.has_validation() && start_step == 0) loop.EvaluateAndReport();

  // 7. Train.
  while (!loop.finished() && !loop.StopAgreed()) {
    const auto step_start = std::chrono::steady_clock::now();
    const std::vector<Batch> micro_batches = loop.NextBatch();
    const StepResult result = loop.ForwardBackward(micro_batches);
    loop.OptimizerStep();
    loop.Report(result);
    loop.MaybeEvaluate();
    if (loop.ShouldStopEarly()) break;
    loop.MaybeCheckpoint();
    if (min_step.count() > 0 && !loop.finished()) {
      SleepUntilStopOr(step_start + std::chrono::duration_cast<std::chrono::nanoseconds>(min_step));
    }
  }
  const bool early_stopped = loop.ShouldStopEarly();
  if (loop.StopAgreed() && !loop.finished() && !early_stopped) {
    const std::string checkpoint = loop.Checkpoint();
    reporter.Stopped(loop.state().step, checkpoint);
    std::cerr << "stopped at step " << loop.state().step << "; checkpoint " << checkpoint << "\n";
    return kExitStopped;
  }

  // 8. Outputs: with an early stop, the adapter of the best evaluation.
  DoneLine done;
  done.step = loop.state().step;
  if (early_stopped) {
    // The adapter is the best evaluation's: evaluated again, so that the last `eval` line (and
    // the job's eval loss) is the adapter's own.
    loop.RestoreBestParameters();
    if (loop.has_validation()) loop.EvaluateAndReport();
    done.early_stopped = true;
    done.best_step = loop.state().best_step;
    std::cerr << "early stop at step " << done.step << ": " << spec.patience_evals
              << " evaluations without an improvement of more than " << spec.min_delta
              << "; the adapter is step " << done.best_step << "'s\n";
  }
  if (!primary) return kExitOk;  // rank 0 writes the adapter and says `done`
  done.adapter_dir = Absolute(layout::AdapterDir(flags.out));
  WritePeftAdapter(model, lora, spec.model_path, done.adapter_dir);
  if (spec.save_merged_model) {
    done.merged_dir = Absolute(layout::MergedModelDir(flags.out));
    SaveFullModel(model, done.merged_dir, StorageDtype(config));
  }
  if (!spec.sample_prompt.empty()) PrintSample("after", model, *tokenizer, spec);
  done.train_loss = loop.RecentTrainLoss();
  done.eval_loss = loop.state().last_eval_loss;
  reporter.Done(done);
  return kExitOk;
}

}  // namespace
}  // namespace tuneledger::train

int main(int argc, char** argv) {
  tuneledger::train::Flags flags;
  const std::string problem =
      tuneledger::train::ParseFlags(tuneledger::CommandLineArguments(argc, argv), flags);
  if (flags.help) {
    std::cout << tuneledger::train::kUsage;
    return tuneledger::train::kExitOk;
  }
  if (!problem.empty()) {
    std::cerr << "tuneledger-train: " << problem << "\n" << tuneledger::train::kUsage;
    return tuneledger::train::kExitUsage;
  }
  if (flags.version) {
    std::cout << tuneledger::train::VersionLine() << "\n";
    return tuneledger::train::kExitOk;
  }
  // Data-parallel ranks other than 0 print no progress lines (their errors still reach stderr).
  std::ostream no_output(nullptr);
  tuneledger::train::ProgressReporter reporter(flags.ranks.rank == 0 ? std::cout : no_output);
  return tuneledger::train::RunReportingErrors(
      "tuneledger-train", reporter, [&] { return tuneledger::train::Run(flags, reporter); });
}
