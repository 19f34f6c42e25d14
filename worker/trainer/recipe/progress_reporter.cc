#include "worker/trainer/recipe/progress_reporter.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

// ordered_json keeps "type" first, which makes the lines easy to read.
using Line = nlohmann::ordered_json;

Line Number(double value) { return std::isfinite(value) ? Line(value) : Line(nullptr); }

void Write(std::ostream& out, const Line& line) {
  // Invalid UTF-8 in a message (e.g. from a file name) is replaced, not thrown.
  out << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
  out.flush();
}

}  // namespace

void ProgressReporter::Started(const StartedLine& line) {
  Write(out_, Line{{"type", "started"},
                   {"total_steps", line.total_steps},
                   {"start_step", line.start_step},
                   {"trainable_params", line.trainable_params},
                   {"total_params", line.total_params},
                   {"device", line.device},
                   {"precision", line.precision}});
}

void ProgressReporter::Scoring(const ScoringLine& line) {
  Line json{{"type", "scoring"},
            {"scored", line.scored},
            {"total", line.total},
            {"method", line.method},
            {"elapsed_s", Number(line.elapsed_s)}};
  if (line.done) {
    json["done"] = true;
    json["kept"] = line.kept;
  }
  Write(out_, json);
}

void ProgressReporter::Progress(const ProgressLine& line) {
  Line json{{"type", "progress"},
            {"step", line.step},
            {"total_steps", line.total_steps},
            {"epoch", Number(line.epoch)},
            {"loss", Number(line.loss)},
            {"lr", Number(line.lr)},
            {"tokens", line.tokens},
            {"tokens_per_sec", Number(line.tokens_per_sec)},
            {"elapsed_s", Number(line.elapsed_s)}};
  if (line.gpu_peak_mib) json["gpu_peak_mib"] = Number(*line.gpu_peak_mib);
  Write(out_, json);
}

void ProgressReporter::Eval(int64_t step, double eval_loss) {
  Write(out_, Line{{"type", "eval"}, {"step", step}, {"eval_loss", Number(eval_loss)}});
}

void ProgressReporter::Checkpoint(int64_t step, const std::string& path) {
  Write(out_, Line{{"type", "checkpoint"}, {"step", step}, {"path", path}});
}

void ProgressReporter::Done(const DoneLine& line) {
  Line done{{"type", "done"},
            {"step", line.step},
            {"adapter_dir", line.adapter_dir},
            {"train_loss", Number(line.train_loss)},
            {"eval_loss", line.eval_loss ? Number(*line.eval_loss) : Line(nullptr)}};
  if (!line.merged_dir.empty()) done["merged_dir"] = line.merged_dir;
  if (line.early_stopped) {
    done["early_stopped"] = true;
    done["best_step"] = line.best_step;
  }
  Write(out_, done);
}

void ProgressReporter::Stopped(int64_t step, const std::string& checkpoint) {
  Line line{{"type", "stopped"}, {"step", step}};
  if (!checkpoint.empty()) line["checkpoint"] = checkpoint;
  Write(out_, line);
}

void ProgressReporter::Error(const std::string& message, const std::string& reason) {
  Line line{{"type", "error"}, {"message", message}};
  if (!reason.empty()) line["reason"] = reason;
  Write(out_, line);
}

int RunReportingErrors(const std::string& program, ProgressReporter& reporter,
                       const std::function<int()>& body) {
  std::string message;
  std::string reason;
  try {
    return body();
  } catch (const LossDivergedError& e) {
    message = e.what();
    reason = "loss_diverged";
  } catch (const RankLostError& e) {
    message = e.what();
    reason = "rank_lost";
  } catch (const TrainError& e) {
    message = e.what();
  } catch (const c10::Error& e) {
    message = std::string("LibTorch: ") + e.what_without_backtrace();
  } catch (const std::exception& e) {
    message = e.what();
  }
  reporter.Error(message, reason);
  std::cerr << program << ": error: " << message << "\n";
  return 1;
}

}  // namespace tuneledger::train
