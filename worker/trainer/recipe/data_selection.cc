// Shape legend: B batch, T tokens, D hidden, V vocab, N positions with a target, n rows of a
// chunk.
#include "worker/trainer/recipe/data_selection.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "lm/trainer_error.h"
#include "tuneledger/v1/job_spec_contract.h"
#include "worker/trainer/model/lora_linear.h"
#include "worker/trainer/recipe/batcher.h"
#include "worker/trainer/recipe/stop_signal.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;

// Per-position score from log-probabilities logp [n,V] fp32 and targets [n] -> [n].
torch::Tensor PositionScores(const torch::Tensor& logp, const torch::Tensor& targets,
                             SelectionMethod method) {
  if (method == SelectionMethod::kEntropy) return -(logp.exp() * logp).sum(-1);
  if (method == SelectionMethod::kLoss) return -logp.gather(1, targets.unsqueeze(1)).squeeze(1);
  throw TrainError("data selection: no method to score with");
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

nlohmann::json SelectionJson(const std::string& method, double keep_fraction) {
  return {{"method", method}, {"keep_fraction", keep_fraction}};
}

}  // namespace

const char* SelectionMethodName(SelectionMethod method) {
  switch (method) {
    case SelectionMethod::kEntropy:
      return "entropy";
    case SelectionMethod::kLoss:
      return "loss";
    default:
      return "none";
  }
}

torch::Tensor ExampleScores(const torch::Tensor& hidden, const torch::Tensor& lm_head_weight,
                            const torch::Tensor& labels, SelectionMethod method,
                            int64_t chunk_elements) {
  const int64_t batch = hidden.size(0);
  const int64_t shifted = hidden.size(1) - 1;  // positions that predict a next token
  const int64_t dim = hidden.size(-1);
  torch::Tensor sums = torch::zeros({batch}, hidden.options().dtype(torch::kFloat32));  // [B]
  if (shifted <= 0) return sums;
  torch::Tensor positions = hidden.slice(/*dim=*/1, 0, -1).reshape({-1, dim});  // [B*(T-1),D]
  torch::Tensor next = labels.slice(/*dim=*/1, 1).reshape({-1});                // [B*(T-1)]
  torch::Tensor with_target = (next != kIgnoreLabel).nonzero().squeeze(1);      // [N]
  torch::Tensor rows = positions.index_select(0, with_target);                  // [N,D]
  torch::Tensor targets = next.index_select(0, with_target);                    // [N]
  torch::Tensor owner = with_target.div(shifted, "floor");                      // [N] row in B
  const int64_t chunk_rows = std::max<int64_t>(1, chunk_elements / lm_head_weight.size(0));
  torch::Tensor scores = torch::empty({rows.size(0)}, sums.options());  // [N]
  for (int64_t begin = 0; begin < rows.size(0); begin += chunk_rows) {
    const int64_t n = std::min(chunk_rows, rows.size(0) - begin);
    // The logits by the one policy for frozen projections, as the loss computes them.
    torch::Tensor logits =
        BaseLinear(rows.narrow(0, begin, n), lm_head_weight, torch::Tensor()).to(torch::kFloat32);
    torch::Tensor logp = torch::log_softmax(logits, -1);  // [n,V]
    scores.narrow(0, begin, n).copy_(PositionScores(logp, targets.narrow(0, begin, n), method));
  }
  sums.index_add_(0, owner, scores);
  torch::Tensor counts = torch::zeros_like(sums).index_add_(0, owner, torch::ones_like(scores));
  return sums / counts.clamp_min(1);  // [B]
}

torch::Tensor ExampleScoresFromLogits(const torch::Tensor& logits, const torch::Tensor& labels,
                                      SelectionMethod method) {
  const int64_t vocab = logits.size(-1);
  torch::Tensor logp = torch::log_softmax(logits.slice(/*dim=*/1, 0, -1).to(torch::kFloat32),
                                          -1);      // [B,T-1,V]
  torch::Tensor next = labels.slice(/*dim=*/1, 1);  // [B,T-1]
  torch::Tensor trained = (next != kIgnoreLabel);   // [B,T-1]
  torch::Tensor per_position =
      PositionScores(logp.reshape({-1, vocab}), next.clamp_min(0).reshape({-1}), method)
          .reshape(next.sizes());                                         // [B,T-1]
  torch::Tensor count = trained.sum(1).to(torch::kFloat32).clamp_min(1);  // [B]
  return (per_position * trained.to(torch::kFloat32)).sum(1) / count;     // [B]
}

std::vector<int64_t> SelectTopFraction(const std::vector<double>& scores, double keep_fraction) {
  if (!(keep_fraction > 0 && keep_fraction <= 1)) {
    throw TrainError("data selection: keep_fraction must be in (0, 1], got " +
                     std::to_string(keep_fraction));
  }
  const int64_t keep = spec::KeptExampleCount(static_cast<int64_t>(scores.size()), keep_fraction);
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  std::vector<int64_t> kept(order.begin(), order.begin() + keep);
  std::sort(kept.begin(), kept.end());
  return kept;
}

std::optional<std::vector<double>> ScoreExamples(
    LlamaForCausalLM& model, const std::vector<TokenizedExample>& examples,
    const ScoringOptions& options, const std::function<bool(int64_t scored)>& after_batch) {
  std::vector<int64_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return examples[a].input_ids.size() > examples[b].input_ids.size();
  });
  std::vector<double> scores(examples.size(), 0.0);
  torch::NoGradGuard no_grad;
  model->eval();
  const size_t batch_size = static_cast<size_t>(std::max(1, options.batch_size));
  for (size_t start = 0; start < order.size(); start += batch_size) {
    const std::vector<int64_t> indices(order.begin() + start,
                                       order.begin() + std::min(order.size(), start + batch_size));
    const Batch batch = CollateBatch(examples, indices, options.pad_id);
    torch::Tensor hidden = model->Hidden(batch.input_ids.to(options.device));  // [B,T,D]
    torch::Tensor batch_scores = ExampleScores(hidden, model->LmHeadWeight(),
                                               batch.labels.to(options.device), options.method)
                                     .to(torch::kCPU, torch::kFloat64);  // [B]
    for (size_t i = 0; i < indices.size(); ++i) {
      scores[indices[i]] = batch_scores[static_cast<int64_t>(i)].item<double>();
    }
    if (after_batch && !after_batch(static_cast<int64_t>(start + indices.size()))) {
      model->train();
      return std::nullopt;
    }
  }
  model->train();
  return scores;
}

std::optional<DataSelectionState> SelectTrainingExamples(LlamaForCausalLM& model,
                                                         const TokenizedDataset& train,
                                                         const DataSelectionJob& job,
                                                         ProgressReporter& reporter) {
  constexpr auto kReportEvery = std::chrono::seconds(1);
  ScoringLine line;
  line.total = static_cast<int64_t>(train.examples.size());
  line.method = SelectionMethodName(job.scoring.method);
  line.elapsed_s = SecondsSince(job.process_start);
  reporter.Scoring(line);
  auto last_report = std::chrono::steady_clock::now();
  auto batch_start = last_report;
  const std::optional<std::vector<double>> scores =
      ScoreExamples(model, train.examples, job.scoring, [&](int64_t scored) {
        if (job.min_batch_duration.count() > 0 && scored < line.total) {
          SleepUntilStopOr(batch_start + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             job.min_batch_duration));
        }
        if (StopRequested()) return false;
        const auto now = std::chrono::steady_clock::now();
        batch_start = now;
        if (scored < line.total && now - last_report >= kReportEvery) {
          line.scored = scored;
          line.elapsed_s = SecondsSince(job.process_start);
          reporter.Scoring(line);
          last_report = now;
        }
        return true;
      });
  if (!scores) return std::nullopt;

  DataSelectionState selection;
  selection.method = line.method;
  selection.keep_fraction = job.keep_fraction;
  selection.kept = SelectTopFraction(*scores, job.keep_fraction);
  if (!job.output_path.empty()) {
    WriteDataSelectionFile(job.output_path, *scores, selection.kept, train.source_lines);
  }
  line.scored = line.total;
  line.elapsed_s = SecondsSince(job.process_start);
  line.done = true;
  line.kept = static_cast<int64_t>(selection.kept.size());
  reporter.Scoring(line);
  return selection;
}

void WriteDataSelectionFile(const std::string& path, const std::vector<double>& scores,
                            const std::vector<int64_t>& kept,
                            const std::vector<int64_t>& source_lines) {
  std::vector<bool> is_kept(scores.size(), false);
  for (int64_t index : kept) is_kept.at(static_cast<size_t>(index)) = true;
  const std::string tmp = path + ".tmp";
  std::error_code error;
  fs::create_directories(fs::path(path).parent_path(), error);
  if (error) throw TrainError(path + ": cannot create its folder: " + error.message());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw TrainError(tmp + ": cannot open for writing");
    for (size_t i = 0; i < scores.size(); ++i) {
      nlohmann::ordered_json line{{"example", i}};
      if (i < source_lines.size()) line["line"] = source_lines[i];
      line["score"] = std::isfinite(scores[i]) ? nlohmann::ordered_json(scores[i])
                                               : nlohmann::ordered_json(nullptr);
      line["kept"] = static_cast<bool>(is_kept[i]);
      out << line.dump() << '\n';
    }
    out.close();
    if (!out) throw TrainError(tmp + ": write failed");
  }
  fs::rename(tmp, path, error);
  if (error) throw TrainError(path + ": cannot rename " + tmp + " to it: " + error.message());
}

void CheckResumedSelection(const std::string& checkpoint_dir,
                           const std::optional<DataSelectionState>& saved, SelectionMethod method,
                           double keep_fraction, int64_t examples) {
  const nlohmann::json now = method == SelectionMethod::kNone
                                 ? nlohmann::json("none")
                                 : SelectionJson(SelectionMethodName(method), keep_fraction);
  const nlohmann::json was =
      saved ? SelectionJson(saved->method, saved->keep_fraction) : nlohmann::json("none");
  const std::string where = "checkpoint " + checkpoint_dir + ": ";
  if (was != now) {
    throw TrainError(where + "written for a different job: data_selection was " + was.dump() +
                     ", now " + now.dump());
  }
  if (!saved) return;
  int64_t previous = -1;
  for (int64_t index : saved->kept) {
    if (index <= previous || index >= examples) {
      throw TrainError(where + "data_selection.kept holds example " + std::to_string(index) +
                       " out of order or beyond the " + std::to_string(examples) +
                       " training examples");
    }
    previous = index;
  }
  if (saved->kept.empty()) throw TrainError(where + "data_selection.kept is empty");
}

std::vector<TokenizedExample> KeptExamples(const std::vector<TokenizedExample>& examples,
                                           const std::vector<int64_t>& kept) {
  std::vector<TokenizedExample> selected;
  selected.reserve(kept.size());
  for (int64_t index : kept) selected.push_back(examples.at(static_cast<size_t>(index)));
  return selected;
}

}  // namespace tuneledger::train
