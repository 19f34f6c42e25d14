#include "client/progress_bar.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/value_format.h"

namespace tuneledger::client {
namespace {

using tuneledger::v1::Job;

constexpr size_t kMinBarWidth = 10;
constexpr size_t kMaxBarWidth = 32;

struct Part {
  std::string text;
  int keep_priority;  // the smallest is left out first when the line is too wide
};

size_t LineWidth(const std::vector<Part>& parts) {
  size_t width = 0;
  for (const Part& part : parts) width += DisplayWidth(part.text) + (width > 0 ? 1 : 0);
  return width;
}

std::string Join(const std::vector<Part>& parts) {
  std::string line;
  for (const Part& part : parts) {
    if (!line.empty()) line += ' ';
    line += part.text;
  }
  return line;
}

// Cuts UTF-8 text to at most `width` code points.
std::string CutToWidth(const std::string& text, size_t width) {
  size_t seen = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (seen == width) return text.substr(0, i);
      ++seen;
    }
  }
  return text;
}

std::string StateText(const Job& job) {
  std::string text = Job::State_Name(job.state());
  if (job.reason() != Job::REASON_UNSPECIFIED) {
    absl::StrAppend(&text, " (", Job::Reason_Name(job.reason()), ")");
  }
  return text;
}

// "$0.0042/$1.0000": cost and budget in one money format.
std::string CostText(const Job& job) {
  const tuneledger::v1::CostSummary& cost = job.cost();
  const int decimals = UsdDecimals({cost.accrued_usd(), cost.budget_usd()});
  std::string text = FormatUsd(cost.accrued_usd(), decimals);
  if (cost.has_budget_usd()) absl::StrAppend(&text, "/", FormatUsd(cost.budget_usd(), decimals));
  return text;
}

}  // namespace

double ProgressRatio(const tuneledger::v1::Progress& progress) {
  if (progress.ratio() > 0) return progress.ratio();
  if (progress.total_steps() > 0)
    return static_cast<double>(progress.step()) / progress.total_steps();
  return 0;
}

double EstimateEtaSeconds(const tuneledger::v1::Progress& progress) {
  if (progress.eta_seconds() > 0) return progress.eta_seconds();
  if (ProgressRatio(progress) >= 1) return 0;
  // No extrapolation from elapsed time: it includes loading the model, so an early guess is
  // many times too long. Unknown until the server has measured the step rate.
  return -1;
}

std::string EtaText(const tuneledger::v1::Progress& progress) {
  const double eta = EstimateEtaSeconds(progress);
  return eta < 0 ? std::string("measuring") : FormatDuration(eta);
}

std::string FormatBar(double ratio, size_t width) {
  width = std::max<size_t>(width, 3);
  const size_t inner = width - 2;
  if (!std::isfinite(ratio)) ratio = 0;
  ratio = std::clamp(ratio, 0.0, 1.0);
  const size_t filled = static_cast<size_t>(std::floor(ratio * inner + 1e-9));
  return absl::StrCat("[", std::string(filled, '#'), std::string(inner - filled, '.'), "]");
}

std::string FormatProgressLine(const Job& job, const ProgressLineOptions& options) {
  const tuneledger::v1::Progress& progress = job.progress();
  const bool running = job.state() == Job::RUNNING;
  const bool scoring = progress.phase() == tuneledger::v1::Progress::SCORING;
  const bool has_steps = !scoring && (progress.step() > 0 || progress.total_steps() > 0);
  const double ratio = ProgressRatio(progress);

  std::vector<Part> parts;
  parts.push_back({absl::StrCat("job ", job.id(), " ", StateText(job)), 100});
  if (job.state() == Job::QUEUED) {
    parts.push_back({job.attempts() > 0
                         ? absl::StrCat("(requeued after attempt ", job.attempts(), ")")
                         : std::string("(waiting for a worker)"),
                     30});
  }
  if (scoring) {
    // Data selection: the base model scores the training examples before the first step.
    std::string scored = absl::StrCat("scoring data ", progress.scored_examples());
    if (progress.total_examples() > 0) {
      absl::StrAppend(&scored, "/", progress.total_examples(), " examples (", FormatPercent(ratio),
                      ")");
    }
    parts.push_back({scored, 90});
  }
  if (has_steps) {
    std::string step = absl::StrCat("step ", progress.step());
    if (progress.total_steps() > 0) {
      absl::StrAppend(&step, "/", progress.total_steps(), " (", FormatPercent(ratio), ")");
    }
    parts.push_back({step, 90});
  }
  if (has_steps && progress.step() > 0)
    parts.push_back({absl::StrCat("loss ", FormatReal(progress.loss())), 60});
  if (progress.has_eval_loss()) {
    parts.push_back({absl::StrCat("eval ", FormatReal(progress.eval_loss())), 20});
  }
  if (running && progress.tokens_per_second() > 0) {
    parts.push_back({absl::StrCat(FormatCount(progress.tokens_per_second()), " tok/s"), 40});
  }
  parts.push_back({CostText(job), 80});
  if (running && !scoring) {
    parts.push_back({absl::StrCat("ETA ", EtaText(progress)), 70});
  }

  if (options.width > 0) {
    while (LineWidth(parts) > options.width && parts.size() > 1) {
      auto least = std::min_element(
          parts.begin() + 1, parts.end(),
          [](const Part& a, const Part& b) { return a.keep_priority < b.keep_priority; });
      parts.erase(least);
    }
  }
  const bool has_total = scoring ? progress.total_examples() > 0 : progress.total_steps() > 0;
  if (options.draw_bar && running && has_total) {
    size_t bar_width = kMaxBarWidth;
    if (options.width > 0) {
      const size_t used = LineWidth(parts) + 1;  // the bar's separating space
      bar_width = options.width > used ? std::min(options.width - used, kMaxBarWidth) : 0;
    }
    if (bar_width >= kMinBarWidth)
      parts.insert(parts.begin() + 1, {FormatBar(ratio, bar_width), 0});
  }
  std::string line = Join(parts);
  if (options.width > 0) line = CutToWidth(line, options.width);
  return line;
}

}  // namespace tuneledger::client
