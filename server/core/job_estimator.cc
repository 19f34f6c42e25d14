#include "server/core/job_estimator.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lm/data/byte_tokenizer.h"
#include "lm/data/epoch_order.h"
#include "lm/data/jsonl_dataset.h"
#include "lm/json_parse.h"
#include "lm/model_config.h"
#include "lm/text/hf_chat_template.h"
#include "lm/text/hf_tokenizer.h"
#include "lm/text/tokenizer.h"
#include "lm/trainer_error.h"
#include "server/core/job_store_rows.h"
#include "tuneledger/v1/job_spec_contract.h"

namespace tuneledger {
namespace {

namespace fs = std::filesystem;

constexpr double kSecondsPerHour = 3600.0;
// A config.json larger than this is not a model config: not read.
constexpr uintmax_t kMaxConfigBytes = 1 << 20;

// "4.9 M", "100 G": a quantity with an SI prefix, for FLOPs in words.
std::string Si(double value) {
  static constexpr std::pair<double, const char*> kPrefixes[] = {
      {1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
  for (const auto& [scale, prefix] : kPrefixes) {
    if (value >= scale) return absl::StrFormat("%.3g %s", value / scale, prefix);
  }
  return absl::StrFormat("%.3g ", value);
}

// ---- The model ----

// config.json's dimensions (Hugging Face Llama names).
struct ModelDims {
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t intermediate = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab = 0;
  bool tied = false;
};

// The dimensions, or nullopt with *problem saying why they cannot be read.
std::optional<ModelDims> ReadModelDims(const std::string& model_dir, std::string* problem) {
  const std::string path = (fs::path(model_dir) / "config.json").string();
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  if (error || size > kMaxConfigBytes) {
    *problem = absl::StrCat(path, ": ", error ? "cannot be read" : "larger than 1 MiB");
    return std::nullopt;
  }
  try {
    // The trainer's own reading of config.json (defaults, validation), torch-free.
    const train::LlamaConfig config = train::LlamaConfig::FromFile(path);
    ModelDims dims;
    dims.hidden = config.hidden_size;
    dims.layers = config.num_hidden_layers;
    dims.intermediate = config.intermediate_size;
    dims.heads = config.num_attention_heads;
    dims.kv_heads = config.num_key_value_heads;
    dims.head_dim = config.head_dim;
    dims.vocab = config.vocab_size;
    dims.tied = config.tie_word_embeddings;
    return dims;
  } catch (const std::exception& e) {
    *problem = e.what();
    return std::nullopt;
  }
}

// Weights of one decoder layer's matrix products: q, k, v, o and the three MLP projections.
double LayerMatmulParameters(const ModelDims& d) {
  const double attention = 2.0 * d.hidden * d.heads * d.head_dim +    // q, o
                           2.0 * d.hidden * d.kv_heads * d.head_dim;  // k, v
  return attention + 3.0 * d.hidden * d.intermediate;
}

// Every parameter of the base model: layers (with their two norms), embeddings, the lm_head when
// not tied, the final norm.
double ModelParameters(const ModelDims& d) {
  return d.layers * (LayerMatmulParameters(d) + 2.0 * d.hidden) +
         (d.tied ? 1.0 : 2.0) * d.vocab * d.hidden + d.hidden;
}

// The weights a token's forward pass multiplies by: every layer's and the lm_head (the embedding
// lookup multiplies nothing).
double ComputeParameters(const ModelDims& d) {
  return d.layers * LayerMatmulParameters(d) + static_cast<double>(d.vocab) * d.hidden;
}

std::string PrecisionText(v1::TrainingConfig::Precision precision) {
  if (precision == v1::TrainingConfig::PRECISION_UNSPECIFIED) return "auto";
  return absl::AsciiStrToLower(v1::TrainingConfig::Precision_Name(precision));
}

std::string ModelShapeKey(const ModelDims& d, const v1::JobSpec& spec) {
  std::vector<std::string> targets(spec.lora().target_modules().begin(),
                                   spec.lora().target_modules().end());
  std::sort(targets.begin(), targets.end());  // a set: the order in the spec means nothing
  const v1::TrainingConfig& t = spec.training();
  return absl::StrCat("hidden=", d.hidden, " layers=", d.layers, " intermediate=", d.intermediate,
                      " heads=", d.heads, " kv_heads=", d.kv_heads, " vocab=", d.vocab,
                      "; lora_r=", spec.lora().r(), " targets=", absl::StrJoin(targets, ","),
                      "; seq_len=", t.seq_len(), " batch_size=", t.batch_size(),
                      " precision=", PrecisionText(t.precision()),
                      " gradient_checkpointing=", t.gradient_checkpointing() ? "on" : "off");
}

// ---- The data ----

// The tokenizer tuneledger-train picks for the folder (recipe/tokenizer.h's order), when it needs
// no library beyond the torch-free ones; nullptr with *why_not otherwise. `name` says which.
std::unique_ptr<train::Tokenizer> LoadTorchFreeTokenizer(const std::string& model_dir,
                                                         std::string* name, std::string* why_not) {
  const fs::path dir(model_dir);
  std::error_code error;
  if (fs::exists(dir / train::HfTokenizer::kFileName, error)) {
    *name = train::HfTokenizer::kFileName;
    return train::HfTokenizer::FromModelDir(model_dir);
  }
  if (fs::exists(dir / train::kSentencePieceModelFileName, error)) {
    *why_not = absl::StrCat("the model's tokenizer is SentencePiece (",
                            train::kSentencePieceModelFileName, "), which only the trainer loads");
    return nullptr;
  }
  if (fs::exists(dir / train::ByteTokenizer::kConfigFileName, error)) {
    *name = absl::StrCat("byte-level ", train::ByteTokenizer::kConfigFileName);
    return train::ByteTokenizer::FromModelDir(model_dir);
  }
  *why_not = absl::StrCat("the model folder has no tokenizer (", train::HfTokenizer::kFileName,
                          ", ", train::kSentencePieceModelFileName, " or ",
                          train::ByteTokenizer::kConfigFileName, ")");
  return nullptr;
}

// What was read of the train file.
struct DataCount {
  std::vector<int64_t> lengths;  // tokens of each example read, in file order
  int64_t bytes_read = 0;        // whole lines, newlines included
  int64_t file_bytes = 0;
  bool whole_file = false;  // lengths hold every example of the file
  int64_t truncated = 0;    // examples cut to seq_len
  int64_t dropped = 0;      // examples left without a target (dropped, as the trainer does)
};

int64_t FileBytes(const std::string& path) {
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  return error ? -1 : static_cast<int64_t>(size);
}

bool IsBlank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

// A target is a label at position >= 1 (jsonl_dataset.cc: the trainer drops examples without).
bool HasTargets(const train::TokenizedExample& example) {
  for (size_t t = 1; t < example.labels.size(); ++t) {
    if (example.labels[t] != train::kIgnoreLabel) return true;
  }
  return false;
}

// Reads the whole lines (split at '\n', as std::getline splits them for the trainer) within the
// first `max_bytes` of `path`, calling on_line(line, number, count) for each non-blank one. The
// read is bounded even for a file of one endless line. Throws TrainError when the file cannot be
// opened or read, or holds no complete line within the bound.
template <typename OnLine>
DataCount ReadLines(const std::string& path, int64_t max_bytes, OnLine on_line) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw train::TrainError(path + ": cannot open the data file");
  DataCount count;
  count.file_bytes = FileBytes(path);
  int64_t to_read = std::max<int64_t>(0, max_bytes);
  if (count.file_bytes >= 0) to_read = std::min(to_read, count.file_bytes + 1);
  std::string buffer(static_cast<size_t>(to_read), '\0');
  in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  if (in.bad()) throw train::TrainError(path + ": read error");
  buffer.resize(static_cast<size_t>(in.gcount()));
  in.clear();
  const bool at_end = in.peek() == std::char_traits<char>::eof();
  int64_t line_number = 0;
  size_t position = 0;
  while (position < buffer.size()) {
    const size_t newline = buffer.find('\n', position);
    if (newline == std::string::npos && !at_end) break;  // cut by the bound: not read
    const size_t end = newline == std::string::npos ? buffer.size() : newline;
    const std::string line = buffer.substr(position, end - position);
    ++line_number;
    position = newline == std::string::npos ? buffer.size() : newline + 1;
    count.bytes_read = static_cast<int64_t>(position);
    if (!IsBlank(line)) on_line(line, line_number, count);
  }
  count.whole_file = at_end && position >= buffer.size();
  if (!count.whole_file && count.bytes_read == 0) {
    throw train::TrainError(
        absl::StrCat(path, ": no complete line in the first ", buffer.size(), " bytes"));
  }
  count.file_bytes = std::max<int64_t>(count.file_bytes, static_cast<int64_t>(buffer.size()));
  return count;
}

// The train file tokenized as LoadJsonlDataset tokenizes it, up to `max_bytes`. Throws
// TrainError "<path>:<line>: ..." for a line the trainer would refuse.
DataCount TokenizeTrainFile(const std::string& path, const train::Tokenizer& tokenizer,
                            const train::DatasetOptions& options, int64_t max_bytes) {
  using json = nlohmann::ordered_json;  // the trainer's record type (jsonl_dataset.h)
  return ReadLines(path, max_bytes, [&](const std::string& line, int64_t number, DataCount& count) {
    const std::string where = absl::StrCat(path, ":", number, ": ");
    const json record = train::ParseJsonOrThrow<json>(line, where);
    train::TokenizedExample example;
    bool truncated = false;
    try {
      example = train::TokenizeRecord(record, tokenizer, options, &truncated);
    } catch (const train::TrainError& e) {
      throw train::TrainError(where + e.what());
    } catch (const json::exception& e) {
      throw train::TrainError(
          absl::StrCat(where, "unexpected JSON value (nlohmann error ", e.id, ")"));
    }
    if (truncated) ++count.truncated;
    if (!HasTargets(example)) {
      ++count.dropped;
      return;
    }
    count.lengths.push_back(static_cast<int64_t>(example.input_ids.size()));
  });
}

// The file-size fallback over the lines: each non-blank line one example of
// min(seq_len, ceil(bytes / kAssumedBytesPerToken)) tokens.
DataCount CountLinesBySize(const std::string& path, int seq_len, int64_t max_bytes) {
  return ReadLines(path, max_bytes, [&](const std::string& line, int64_t, DataCount& count) {
    const auto tokens = static_cast<int64_t>(std::ceil(line.size() / kAssumedBytesPerToken));
    count.lengths.push_back(std::min<int64_t>(seq_len, tokens));
  });
}

// The whole file's examples and tokens: counted, or extrapolated from the part read by bytes.
struct DataTotals {
  const std::vector<int64_t>* lengths = nullptr;  // every example, in file order; null: estimated
  double examples = 0;
  double tokens = 0;
};

DataTotals TotalsOf(const DataCount& count) {
  DataTotals totals;
  const double tokens_read =
      static_cast<double>(std::accumulate(count.lengths.begin(), count.lengths.end(), int64_t{0}));
  totals.examples = static_cast<double>(count.lengths.size());
  totals.tokens = tokens_read;
  if (count.whole_file) {
    totals.lengths = &count.lengths;
  } else if (count.bytes_read > 0) {
    const double scale = static_cast<double>(count.file_bytes) / count.bytes_read;
    totals.examples *= scale;
    totals.tokens *= scale;
  }
  return totals;
}

// ---- Steps and tokens ----

struct TrainingPlan {
  int64_t all_examples = 0;  // in the file
  int64_t examples = 0;      // trained on (data selection keeps fewer)
  int64_t total_steps = 0;
  int64_t tokens_to_train = 0;
  int64_t scoring_tokens = 0;
  double mean_tokens = 0;  // per example
};

TrainingPlan PlanTraining(const v1::JobSpec& spec, const DataTotals& data) {
  const v1::TrainingConfig& t = spec.training();
  const int64_t batch = std::max(1, t.batch_size());
  const int64_t accumulation = std::max(1, t.grad_accum_steps());
  const bool selecting = t.data_selection().method() != v1::DataSelection::METHOD_UNSPECIFIED;
  TrainingPlan plan;
  double all_tokens = data.tokens;
  if (data.lengths != nullptr) {
    plan.all_examples = static_cast<int64_t>(data.lengths->size());
    all_tokens = static_cast<double>(
        std::accumulate(data.lengths->begin(), data.lengths->end(), int64_t{0}));
  } else {
    plan.all_examples = std::llround(data.examples);
  }
  plan.mean_tokens = plan.all_examples > 0 ? all_tokens / plan.all_examples : 0;
  plan.examples =
      selecting ? spec::KeptExampleCount(plan.all_examples, t.data_selection().keep_fraction())
                : plan.all_examples;
  if (selecting) plan.scoring_tokens = std::llround(all_tokens);

  // train_main.cc TotalSteps; an optimizer step never spans two epochs (train_loop.h).
  const int64_t batches_per_epoch = (plan.examples + batch - 1) / batch;
  const int64_t steps_per_epoch = (batches_per_epoch + accumulation - 1) / accumulation;
  plan.total_steps =
      t.max_steps() > 0 ? t.max_steps() : std::max<int64_t>(1, steps_per_epoch * t.epochs());
  if (steps_per_epoch == 0) return plan;  // no example: the trainer refuses the data
  const int64_t full_epochs = plan.total_steps / steps_per_epoch;
  const int64_t partial_steps = plan.total_steps % steps_per_epoch;
  if (data.lengths != nullptr && !selecting) {
    // Exact: whole epochs train every example; the partial one the first batches of its order.
    plan.tokens_to_train = full_epochs * std::llround(all_tokens);
    if (partial_steps > 0) {
      const std::vector<std::vector<int64_t>> batches = train::LengthGroupedEpochOrder(
          *data.lengths, static_cast<int>(batch), t.seed(), full_epochs);
      for (int64_t b = 0; b < partial_steps * accumulation; ++b) {
        for (int64_t index : batches[b]) plan.tokens_to_train += (*data.lengths)[index];
      }
    }
  } else {
    const int64_t partial_examples = std::min(partial_steps * accumulation * batch, plan.examples);
    plan.tokens_to_train = std::llround(
        (static_cast<double>(full_epochs) * plan.examples + partial_examples) * plan.mean_tokens);
  }
  return plan;
}

}  // namespace

namespace estimator_internal {

// What the model folder gives: its dimensions, and for the data count its torch-free tokenizer
// and chat template (EstimateFileCache keeps them while the folder is unchanged).
struct ModelReading {
  std::optional<ModelDims> dims;
  std::string dims_problem;  // why dims is empty
  std::shared_ptr<const train::Tokenizer> tokenizer;
  std::string tokenizer_name;
  std::string no_tokenizer;  // why tokenizer is null: none the server loads, or its load error
  bool load_failed = false;  // no_tokenizer is a load error (a note), not a plain absence
  std::shared_ptr<const train::HfChatTemplate> chat_template;
  std::string chat_template_error;  // as the trainer: it fails "messages" lines only
};

// What the train file gives, before the spec's batch shape: its count (tokenized, or lines by
// size), or, when not even the lines can be read, the totals assumed from its size.
struct DataReading {
  std::optional<DataCount> count;
  bool tokens_counted = false;
  DataTotals assumed;  // when count is empty
  std::string basis;
  std::vector<std::string> notes;
};

}  // namespace estimator_internal

namespace {

using estimator_internal::DataReading;
using estimator_internal::ModelReading;

ModelReading ReadModel(const std::string& model_dir) {
  ModelReading model;
  model.dims = ReadModelDims(model_dir, &model.dims_problem);
  try {
    model.tokenizer = LoadTorchFreeTokenizer(model_dir, &model.tokenizer_name, &model.no_tokenizer);
    if (model.tokenizer != nullptr) {
      try {
        model.chat_template = train::HfChatTemplate::FromModelDir(model_dir);
      } catch (const train::TrainError& e) {
        model.chat_template_error = e.what();
      }
    }
  } catch (const std::exception& e) {
    // The edge between the server and the trainer's libraries: a tokenizer or template they
    // cannot read becomes a note and the file-size estimate; it never fails a submit.
    model.tokenizer = nullptr;
    model.chat_template = nullptr;
    model.no_tokenizer = e.what();
    model.load_failed = true;
  }
  return model;
}

DataReading ReadTrainData(const ModelReading& model, const std::string& path, int seq_len,
                          int64_t vocab_size, int64_t max_tokenized_bytes) {
  DataReading data;
  std::optional<DataCount>& count = data.count;
  std::string& basis = data.basis;
  std::string not_counted = model.no_tokenizer;  // why the data was not tokenized
  if (model.load_failed) {
    data.notes.push_back(
        absl::StrCat("The data could not be tokenized as the trainer would: ", not_counted));
  }
  try {
    if (model.tokenizer != nullptr) {
      train::DatasetOptions data_options{seq_len, vocab_size};
      data_options.chat_template = model.chat_template.get();
      data_options.chat_template_error = model.chat_template_error;
      count = TokenizeTrainFile(path, *model.tokenizer, data_options, max_tokenized_bytes);
      const std::string as_trainer =
          absl::StrCat(" with the model's ", model.tokenizer_name, ", as tuneledger-train does (",
                       count->truncated, " cut to seq_len ", seq_len, ", ", count->dropped,
                       " without a target dropped)");
      if (count->whole_file) {
        basis = absl::StrCat("counted: tokenized all ", count->lengths.size(), " examples (",
                             count->file_bytes, " bytes)", as_trainer);
      } else {
        basis = absl::StrCat("counted in part: tokenized the first ", count->bytes_read, " of ",
                             count->file_bytes, " bytes (", count->lengths.size(), " examples)",
                             as_trainer, "; the other ", count->file_bytes - count->bytes_read,
                             " bytes are taken to hold examples of the same size");
      }
      if (count->whole_file && count->lengths.empty()) {
        data.notes.push_back(absl::StrCat(
            "The training file has no example with a token to train on: the trainer will fail."));
      }
    }
  } catch (const std::exception& e) {
    // As in ReadModel: a line the trainer would refuse or a file that cannot be opened becomes a
    // note and the file-size estimate.
    count.reset();
    not_counted = e.what();
    data.notes.push_back(
        absl::StrCat("The data could not be tokenized as the trainer would: ", e.what()));
  }
  data.tokens_counted = count.has_value();

  if (!count.has_value()) {
    const std::string assumed = absl::StrCat("assumed, not counted (", not_counted, "): ");
    try {
      count = CountLinesBySize(path, seq_len, max_tokenized_bytes);
      basis = absl::StrCat(assumed, kAssumedBytesPerToken, " bytes of the file per token, each of ",
                           count->whole_file ? "the " : "", count->lengths.size(),
                           " non-blank lines one example of at most seq_len ", seq_len, " tokens",
                           count->whole_file
                               ? ""
                               : absl::StrCat(" (the first ", count->bytes_read, " of ",
                                              count->file_bytes, " bytes; the rest extrapolated)"));
    } catch (const std::exception& e) {
      // Not even the lines: the size alone, when the server can see it.
      const int64_t file_bytes = FileBytes(path);
      if (file_bytes < 0) {
        basis = absl::StrCat(assumed, "the training file cannot be read here (", e.what(),
                             "), so there is nothing to estimate from");
        data.notes.push_back("The training file cannot be read by the server: no tokens, no cost.");
      } else {
        data.assumed.examples =
            static_cast<double>((file_bytes + kAssumedExampleBytes - 1) / kAssumedExampleBytes);
        data.assumed.tokens =
            data.assumed.examples *
            std::min<double>(seq_len, kAssumedExampleBytes / kAssumedBytesPerToken);
        basis = absl::StrCat(assumed, "the file's ", file_bytes, " bytes at ", kAssumedExampleBytes,
                             " bytes per example and ", kAssumedBytesPerToken,
                             " bytes per token, at most seq_len ", seq_len, " per example");
      }
    }
  }
  return data;
}

// Fills examples, total_steps, tokens_to_train, tokens_counted, tokens_basis, scoring_tokens and
// the data's notes.
void EstimateData(const v1::JobSpec& spec, const DataReading& data, v1::JobEstimate& estimate) {
  for (const std::string& note : data.notes) estimate.add_notes(note);
  estimate.set_tokens_counted(data.tokens_counted);
  const std::string& basis = data.basis;
  const std::optional<DataCount>& count = data.count;
  DataTotals totals = data.assumed;
  if (count.has_value()) totals = TotalsOf(*count);

  const TrainingPlan plan = PlanTraining(spec, totals);
  estimate.set_examples(plan.examples);
  estimate.set_total_steps(static_cast<int32_t>(std::min<int64_t>(plan.total_steps, INT32_MAX)));
  estimate.set_tokens_to_train(plan.tokens_to_train);
  estimate.set_scoring_tokens(plan.scoring_tokens);
  estimate.set_tokens_basis(basis);

  const v1::TrainingConfig& t = spec.training();
  if (t.data_selection().method() != v1::DataSelection::METHOD_UNSPECIFIED) {
    estimate.add_notes(absl::StrFormat(
        "Data selection keeps %d of %d examples (keep_fraction %g); which ones is known only "
        "after scoring, so their tokens use the mean example length (%.1f tokens). Scoring reads "
        "every example once, forward only: %d tokens, each counted as %.2f of a trained token.",
        plan.examples, plan.all_examples, t.data_selection().keep_fraction(), plan.mean_tokens,
        plan.scoring_tokens, kScoringTokenWeight));
  }
  if (t.max_steps() > 0 && plan.examples > 0 &&
      static_cast<double>(plan.total_steps) * t.batch_size() * t.grad_accum_steps() >
          static_cast<double>(plan.examples) * 100) {
    estimate.add_notes(absl::StrCat("max_steps ", t.max_steps(), " passes over the ", plan.examples,
                                    " examples more than 100 times."));
  }
  if (t.early_stop().patience_evals() > 0) {
    estimate.add_notes(
        "training.early_stop may end the job before its last step: the estimate is for every "
        "step.");
  }
}

// ---- What the files say, cached ----

// `stamp`: FolderStamp(model_dir), taken before reading (so a file changed during the read is
// read again next time); empty: not cached.
std::shared_ptr<const ModelReading> ModelOf(const std::string& model_dir, const std::string& stamp,
                                            EstimateFileCache* cache) {
  auto read = [&] { return std::make_shared<const ModelReading>(ReadModel(model_dir)); };
  return stamp.empty() ? read() : cache->models.GetOrRead(model_dir, stamp, read);
}

// `model_stamp`: as for ModelOf.
std::shared_ptr<const DataReading> DataOf(const v1::JobSpec& spec, const ModelReading& model,
                                          const std::string& model_stamp,
                                          const EstimatorOptions& options) {
  const int seq_len = spec.training().seq_len();
  const int64_t vocab = model.dims.has_value() ? model.dims->vocab : 0;
  auto read = [&] {
    return std::make_shared<const DataReading>(
        ReadTrainData(model, spec.train_path(), seq_len, vocab, options.max_tokenized_bytes));
  };
  std::string data_stamp;
  if (!model_stamp.empty()) {
    data_stamp =
        options.train_stamp.has_value() ? *options.train_stamp : FileStamp(spec.train_path());
  }
  if (data_stamp.empty()) return read();
  const std::string key = absl::StrCat(spec.model_path(), "\n", spec.train_path(), "\n", seq_len,
                                       " ", vocab, " ", options.max_tokenized_bytes);
  return options.file_cache->data.GetOrRead(key, absl::StrCat(model_stamp, "\n", data_stamp), read);
}

// ---- Rates ----

// A class's rate measured on past jobs: work tokens (trained + weighted scoring) per billed
// second.
struct MeasuredRate {
  double work_tokens = 0;
  double seconds = 0;
  std::vector<std::string> job_ids;
};

MeasuredRate MeasuredRateOn(const std::vector<SucceededRun>& runs, const std::string& shape,
                            const std::string& accelerator, int max_jobs) {
  MeasuredRate rate;
  if (shape.empty()) return rate;
  for (const SucceededRun& run : runs) {
    if (static_cast<int>(rate.job_ids.size()) >= max_jobs) break;
    if (run.model_shape != shape || run.tokens <= 0 || run.attempts.empty()) continue;
    double seconds = 0;
    bool same_accelerator = true;
    for (const SucceededRun::Attempt& attempt : run.attempts) {
      same_accelerator = same_accelerator && attempt.accelerator == accelerator;
      seconds += attempt.seconds;
    }
    if (!same_accelerator || !(seconds > 0)) continue;
    rate.work_tokens += run.tokens + kScoringTokenWeight * run.scoring_tokens;
    rate.seconds += seconds;
    rate.job_ids.push_back(run.job_id);
  }
  return rate;
}

struct AcceleratorFlops {
  const char* pattern;  // matched case-insensitively inside the accelerator name
  double flops;         // sustained FLOP/s assumed for a LoRA step
  const char* what;
};

// Roughly a quarter to a third of each GPU's dense bf16 peak (what LoRA fine-tunes sustain,
// e.g. 150 TFLOP/s measured by the 1.1B case of bench/README.md on an H200); the CPU figure is a
// 2-core VM's LoRA step (bench/README.md "Trainer step"). Order matters: the first match wins,
// so "A100" comes before "A10" and "L40" before "L4".
constexpr AcceleratorFlops kAcceleratorFlops[] = {
    {"B200", 550e12, "B200 (2.25 PFLOP/s bf16 peak)"},
    {"H200", 250e12, "H200 (989 TFLOP/s bf16 peak)"},
    {"H100", 250e12, "H100 (989 TFLOP/s bf16 peak)"},
    {"A100", 100e12, "A100 (312 TFLOP/s bf16 peak)"},
    {"L40", 90e12, "L40/L40S (362 TFLOP/s bf16 peak)"},
    {"A10", 30e12, "A10/A10G (125 TFLOP/s bf16 peak)"},
    {"L4", 30e12, "L4 (121 TFLOP/s bf16 peak)"},
    {"4090", 45e12, "RTX 4090 (165 TFLOP/s bf16 peak)"},
    {"V100", 30e12, "V100 (125 TFLOP/s fp16 peak)"},
    {"T4", 12e12, "T4 (65 TFLOP/s fp16 peak)"},
};
constexpr double kCpuFlops = 100e9;
constexpr double kUnknownGpuFlops = 50e12;

}  // namespace

double AssumedFlopsPerSecond(const std::string& accelerator, std::string* assumption) {
  const std::string upper = absl::AsciiStrToUpper(accelerator);
  std::string what;
  double flops = kUnknownGpuFlops;
  if (upper == "CPU") {
    flops = kCpuFlops;
    what = "a CPU worker (a 2-core VM's LoRA step, bench/README.md)";
  } else {
    what = absl::StrCat("an accelerator not in the estimator's table (\"", accelerator, "\")");
    for (const AcceleratorFlops& entry : kAcceleratorFlops) {
      if (absl::StrContains(upper, entry.pattern)) {
        flops = entry.flops;
        what = entry.what;
        break;
      }
    }
  }
  if (assumption != nullptr) {
    *assumption = absl::StrCat("an assumed sustained ", Si(flops), "FLOP/s for ", what);
  }
  return flops;
}

std::vector<WorkerGroup> GroupActiveWorkers(const std::vector<v1::Worker>& workers) {
  std::map<std::tuple<std::string, double, bool, int>, int> counts;
  for (const v1::Worker& worker : workers) {
    if (worker.state() != v1::Worker::IDLE && worker.state() != v1::Worker::BUSY) continue;
    ++counts[{worker.accelerator(), worker.price_per_gpu_hour(), worker.spot(), worker.gpus()}];
  }
  std::vector<WorkerGroup> groups;
  groups.reserve(counts.size());
  for (const auto& [key, count] : counts) {
    const auto& [accelerator, price, spot, gpus] = key;
    groups.push_back(WorkerGroup{accelerator, price, spot, gpus, count});
  }
  return groups;
}

v1::JobEstimate BuildJobEstimate(const v1::JobSpec& spec, const std::vector<WorkerGroup>& workers,
                                 const std::vector<SucceededRun>& past_runs, absl::Time now,
                                 const EstimatorOptions& options) {
  v1::JobEstimate estimate;
  SetTimestamp(now, *estimate.mutable_estimate_time());

  std::string model_stamp;
  if (options.file_cache != nullptr) {
    model_stamp =
        options.model_stamp.has_value() ? *options.model_stamp : FolderStamp(spec.model_path());
  }
  const std::shared_ptr<const ModelReading> model =
      ModelOf(spec.model_path(), model_stamp, options.file_cache);
  const std::optional<ModelDims>& dims = model->dims;
  double compute_parameters = 0;
  if (dims.has_value()) {
    estimate.set_model_shape(ModelShapeKey(*dims, spec));
    estimate.set_model_params(static_cast<int64_t>(ModelParameters(*dims)));
    compute_parameters = ComputeParameters(*dims);
  } else {
    estimate.add_notes(absl::StrCat("The model's shape is unknown (", model->dims_problem,
                                    "): no past job can be matched and no rate guessed."));
  }
  EstimateData(spec, *DataOf(spec, *model, model_stamp, options), estimate);
  const double work_tokens =
      estimate.tokens_to_train() + kScoringTokenWeight * estimate.scoring_tokens();

  // ACTIVE workers that can run an attempt, by class.
  const int gpus = std::max(1, spec.gpus());
  std::map<std::tuple<std::string, double, bool>, int> classes;
  int too_small = 0;
  for (const WorkerGroup& group : workers) {
    if (group.gpus < gpus) {
      too_small += group.workers;
      continue;
    }
    classes[{group.accelerator, group.price_per_gpu_hour, group.spot}] += group.workers;
  }
  const double flops_per_token =
      (kFlopsPerParameterPerToken +
       (spec.training().gradient_checkpointing() ? kCheckpointingFlopsPerParameterPerToken : 0)) *
      compute_parameters;
  bool any_cold = false;
  for (const auto& [key, count] : classes) {
    const auto& [accelerator, price, spot] = key;
    v1::WorkerClassEstimate& out = *estimate.add_classes();
    out.set_accelerator(accelerator);
    out.set_price_per_gpu_hour(price);
    out.set_spot(spot);
    out.set_workers(count);
    out.set_gpus(gpus);
    const MeasuredRate measured =
        MeasuredRateOn(past_runs, estimate.model_shape(), accelerator, options.max_past_jobs);
    if (!measured.job_ids.empty()) {
      out.set_tokens_per_second(measured.work_tokens / measured.seconds);
      out.set_past_jobs(static_cast<int32_t>(measured.job_ids.size()));
      out.set_basis(absl::StrFormat(
          "measured: %.0f tokens trained per billed second over the lease time of the newest %d "
          "SUCCEEDED jobs of this model shape on %s (jobs %s); start-up, evaluation and "
          "checkpoints included",
          out.tokens_per_second(), out.past_jobs(), accelerator,
          absl::StrJoin(measured.job_ids, ", ")));
    } else {
      out.set_cold_start(true);
      any_cold = true;
      if (flops_per_token > 0) {
        std::string assumption;
        const double flops = AssumedFlopsPerSecond(accelerator, &assumption);
        out.set_tokens_per_second(flops / flops_per_token);
        out.set_basis(absl::StrFormat(
            "cold start (no SUCCEEDED job of this model shape on %s yet): %g FLOPs per parameter "
            "per trained token x %s matmul parameters = %sFLOP per token, at %s; start-up and "
            "evaluation not included",
            accelerator, flops_per_token / std::max(compute_parameters, 1.0),
            Si(compute_parameters), Si(flops_per_token), assumption));
      } else {
        out.set_basis("cold start, and the model's size is unknown: no rate");
      }
    }
    if (out.tokens_per_second() > 0) {
      out.set_seconds(work_tokens / out.tokens_per_second());
      out.set_gpu_hours(out.seconds() * gpus / kSecondsPerHour);
      out.set_usd(out.gpu_hours() * price);
    }
  }
  // Cheapest first; a class without a rate has no cost and goes last.
  std::stable_sort(estimate.mutable_classes()->begin(), estimate.mutable_classes()->end(),
                   [](const v1::WorkerClassEstimate& a, const v1::WorkerClassEstimate& b) {
                     const bool a_rated = a.tokens_per_second() > 0;
                     const bool b_rated = b.tokens_per_second() > 0;
                     return std::make_tuple(!a_rated, a.usd(), a.price_per_gpu_hour(),
                                            a.accelerator(), a.spot()) <
                            std::make_tuple(!b_rated, b.usd(), b.price_per_gpu_hour(),
                                            b.accelerator(), b.spot());
                   });

  if (classes.empty()) {
    estimate.add_notes(absl::StrCat("No active worker can run this job (", gpus,
                                    " GPUs per attempt): there is no class to price it on."));
  } else if (too_small > 0) {
    estimate.add_notes(absl::StrCat(too_small, " active workers have fewer than ", gpus,
                                    " GPUs and are left out."));
  }
  if (any_cold) {
    estimate.add_notes(
        "A cold start's rate is a FLOPs guess; once a job of this model shape SUCCEEDS on an "
        "accelerator, estimates for that accelerator use its measured rate.");
  }
  if (gpus > 1) {
    estimate.add_notes(absl::StrCat("The trainer trains on one device; an attempt bills all ", gpus,
                                    " GPUs for its whole lease."));
  }
  return estimate;
}

}  // namespace tuneledger
