#include "worker/agent/trainer_output_parser.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace tuneledger::worker {
namespace {

using ::nlohmann::json;
using ::tuneledger::v1::TrainerUpdate;

// Field readers: a missing (or null) field leaves the default; a present one of the wrong
// type is an error naming it.
class FieldReader {
 public:
  FieldReader(const json& object, absl::string_view type) : object_(object), type_(type) {}

  void Int(const char* name, int* out) {
    const json* value = Find(name);
    if (value == nullptr) return;
    if (!value->is_number_integer() && !value->is_number_unsigned()) {
      // Whole numbers written as 12.0 are accepted; anything else is not an int.
      if (value->is_number_float() &&
          value->get<double>() == static_cast<int>(value->get<double>())) {
        *out = static_cast<int>(value->get<double>());
        return;
      }
      Fail(name, "an integer", *value);
      return;
    }
    *out = value->get<int>();
  }
  void Int64(const char* name, int64_t* out) {
    const json* value = Find(name);
    if (value == nullptr) return;
    if (!value->is_number()) {
      Fail(name, "a number", *value);
      return;
    }
    *out = value->is_number_float() ? static_cast<int64_t>(value->get<double>())
                                    : value->get<int64_t>();
  }
  void Double(const char* name, double* out) {
    const json* value = Find(name);
    if (value == nullptr) return;
    if (!value->is_number()) {
      Fail(name, "a number", *value);
      return;
    }
    *out = value->get<double>();
  }
  void Bool(const char* name, bool* out) {
    const json* value = Find(name);
    if (value == nullptr) return;
    if (!value->is_boolean()) {
      Fail(name, "true or false", *value);
      return;
    }
    *out = value->get<bool>();
  }
  void String(const char* name, std::string* out) {
    const json* value = Find(name);
    if (value == nullptr) return;
    if (!value->is_string()) {
      Fail(name, "a string", *value);
      return;
    }
    *out = value->get<std::string>();
  }
  void Require(const char* name) {
    if (Find(name) == nullptr && status_.ok()) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat("trainer line of type \"", type_, "\": missing field \"", name, "\""));
    }
  }
  const absl::Status& status() const { return status_; }

 private:
  const json* Find(const char* name) const {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  void Fail(const char* name, const char* expected, const json& value) {
    if (!status_.ok()) return;
    status_ = absl::InvalidArgumentError(absl::StrCat("trainer line of type \"", type_,
                                                      "\": field \"", name, "\" must be ", expected,
                                                      ", got ", value.dump()));
  }

  const json& object_;
  absl::string_view type_;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<TrainerLine> ParseTrainerLine(absl::string_view line) {
  json object = json::parse(line.begin(), line.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    constexpr size_t kShown = 200;
    return absl::InvalidArgumentError(
        absl::StrCat("trainer line is not a JSON object: ", line.substr(0, kShown),
                     line.size() > kShown ? "..." : ""));
  }
  auto type_it = object.find("type");
  if (type_it == object.end() || !type_it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trainer line has no string \"type\": ", object.dump()));
  }
  TrainerLine parsed;
  parsed.type_name = type_it->get<std::string>();
  const std::string& type = parsed.type_name;
  FieldReader read(object, type);
  TrainerUpdate& update = parsed.update;

  if (type == "started") {
    parsed.type = TrainerLine::Type::kStarted;
    read.Int("total_steps", &parsed.total_steps);
    read.Int("start_step", &parsed.start_step);
  } else if (type == "scoring") {
    parsed.type = TrainerLine::Type::kScoring;
    update.set_kind(TrainerUpdate::SCORING);
    read.Require("scored");
    read.Require("total");
    int64_t scored = 0, total = 0, kept = 0;
    double elapsed = 0;
    bool done = false;
    read.Int64("scored", &scored);
    read.Int64("total", &total);
    read.Int64("kept", &kept);
    read.Bool("done", &done);
    read.Double("elapsed_s", &elapsed);
    update.set_scored_examples(scored);
    update.set_total_examples(total);
    update.set_kept_examples(kept);
    update.set_scoring_done(done);
    update.set_elapsed_seconds(elapsed);
  } else if (type == "progress") {
    parsed.type = TrainerLine::Type::kProgress;
    update.set_kind(TrainerUpdate::PROGRESS);
    read.Require("step");
    int step = 0, total_steps = 0;
    double epoch = 0, loss = 0, lr = 0, tokens_per_sec = 0, elapsed = 0;
    int64_t tokens = 0;
    read.Int("step", &step);
    read.Int("total_steps", &total_steps);
    read.Double("epoch", &epoch);
    read.Double("loss", &loss);
    read.Double("lr", &lr);
    read.Int64("tokens", &tokens);
    read.Double("tokens_per_sec", &tokens_per_sec);
    read.Double("elapsed_s", &elapsed);
    update.set_step(step);
    update.set_total_steps(total_steps);
    update.set_epoch(epoch);
    update.set_loss(loss);
    update.set_learning_rate(lr);
    update.set_tokens(tokens);
    update.set_tokens_per_second(tokens_per_sec);
    update.set_elapsed_seconds(elapsed);
  } else if (type == "eval") {
    parsed.type = TrainerLine::Type::kEval;
    update.set_kind(TrainerUpdate::EVAL);
    read.Require("step");
    read.Require("eval_loss");
    int step = 0;
    double eval_loss = 0;
    read.Int("step", &step);
    read.Double("eval_loss", &eval_loss);
    update.set_step(step);
    update.set_eval_loss(eval_loss);
  } else if (type == "checkpoint" || type == "stopped") {
    const bool stopped = type == "stopped";
    parsed.type = stopped ? TrainerLine::Type::kStopped : TrainerLine::Type::kCheckpoint;
    update.set_kind(TrainerUpdate::CHECKPOINT);
    const char* path_field = stopped ? "checkpoint" : "path";
    read.Require("step");
    // A stop during data selection scoring comes before any checkpoint: no "checkpoint" field.
    if (!stopped) read.Require(path_field);
    int step = 0;
    read.Int("step", &step);
    read.String(path_field, &parsed.checkpoint_path);
    update.set_step(step);
    update.set_checkpoint_path(parsed.checkpoint_path);
  } else if (type == "done") {
    parsed.type = TrainerLine::Type::kDone;
    update.set_kind(TrainerUpdate::PROGRESS);
    read.Require("adapter_dir");
    int step = 0;
    double train_loss = 0, eval_loss = 0;
    read.Int("step", &step);
    read.String("adapter_dir", &parsed.adapter_dir);
    read.Double("train_loss", &train_loss);
    read.Double("eval_loss", &eval_loss);
    bool early_stopped = false;
    read.Bool("early_stopped", &early_stopped);
    if (early_stopped) parsed.reason = v1::Job::EARLY_STOPPED;
    update.set_step(step);
    update.set_total_steps(step);
    update.set_loss(train_loss);
    update.set_eval_loss(eval_loss);
  } else if (type == "error") {
    parsed.type = TrainerLine::Type::kError;
    read.Require("message");
    read.String("message", &parsed.message);
    std::string reason;
    read.String("reason", &reason);
    if (reason == "loss_diverged") parsed.reason = v1::Job::LOSS_DIVERGED;
    parsed.rank_lost = reason == "rank_lost";
  } else {
    parsed.type = TrainerLine::Type::kUnknown;
  }
  TL_RETURN_IF_ERROR(read.status());
  return parsed;
}

std::vector<std::string> LineSplitter::Feed(absl::string_view bytes) {
  std::vector<std::string> lines;
  auto emit = [&] {
    if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
    lines.push_back(std::exchange(partial_, std::string()));
  };
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const absl::string_view piece = bytes.substr(0, newline);
    if (discarding_) {
      // The tail of a line already cut at the limit.
      if (newline == absl::string_view::npos) break;
      discarding_ = false;
    } else if (piece.size() > max_line_bytes_ - partial_.size()) {
      absl::string_view head = piece.substr(0, max_line_bytes_ - partial_.size());
      partial_.append(head.data(), head.size());
      emit();
      if (newline == absl::string_view::npos) {
        discarding_ = true;
        break;
      }
    } else {
      partial_.append(piece.data(), piece.size());
      if (newline == absl::string_view::npos) break;
      emit();
    }
    bytes.remove_prefix(newline + 1);
  }
  return lines;
}

std::optional<std::string> LineSplitter::Finish() {
  if (partial_.empty()) return std::nullopt;
  return std::exchange(partial_, std::string());
}

}  // namespace tuneledger::worker
