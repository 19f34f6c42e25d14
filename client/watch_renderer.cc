#include "client/watch_renderer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/output_render.h"
#include "client/progress_bar.h"

namespace tuneledger::client {
namespace {

// Carriage return, then ANSI "erase to end of line".
constexpr char kClearLine[] = "\r\x1b[K";

// What changed enough for a new line when an update carries no event: the state, its reason,
// the attempt or the step. The server also sends a snapshot for every cost tick and heartbeat,
// which would otherwise print the same job several times a second.
std::string MilestoneKey(const tuneledger::v1::Job& job) {
  return absl::StrCat(job.state(), "/", job.reason(), "/", job.attempts(), "/",
                      job.progress().step());
}

}  // namespace

WatchRenderer::WatchRenderer(Mode mode, std::ostream& out, std::ostream& notices,
                             std::function<size_t()> terminal_width)
    : mode_(mode), out_(out), notices_(notices), terminal_width_(std::move(terminal_width)) {}

void WatchRenderer::ClearLiveLine() {
  if (live_line_drawn_) {
    out_ << kClearLine;
    live_line_drawn_ = false;
  }
}

void WatchRenderer::DrawLiveLine() {
  ProgressLineOptions options;
  options.width = terminal_width_ ? terminal_width_() : 80;
  // Leave the last column free: writing into it makes some terminals wrap.
  if (options.width > 1) options.width -= 1;
  options.draw_bar = true;
  out_ << kClearLine << FormatProgressLine(last_job_, options);
  live_line_drawn_ = true;
}

void WatchRenderer::Update(const tuneledger::v1::WatchJobResponse& update) {
  last_job_ = update.job();
  have_job_ = true;
  switch (mode_) {
    case Mode::kJson: {
      const std::string key = MilestoneKey(update.job());
      if (update.has_event() || key != last_key_) out_ << ToJson(update) << "\n";
      last_key_ = key;
      break;
    }
    case Mode::kTerminal:
      if (update.has_event()) {
        ClearLiveLine();
        out_ << EventLine(update.event()) << "\n";
      }
      DrawLiveLine();
      break;
    case Mode::kPlain: {
      if (update.has_event()) out_ << EventLine(update.event()) << "\n";
      const std::string key = MilestoneKey(update.job());
      if (key != last_key_) {
        out_ << FormatProgressLine(update.job(), ProgressLineOptions{}) << "\n";
        last_key_ = key;
      }
      break;
    }
  }
  out_.flush();
}

void WatchRenderer::Notice(const std::string& text) {
  if (mode_ == Mode::kTerminal) ClearLiveLine();
  out_.flush();  // the cleared line must reach the terminal before the notice does
  notices_ << text << "\n";
  notices_.flush();
  if (mode_ == Mode::kTerminal && have_job_) DrawLiveLine();
  out_.flush();
}

void WatchRenderer::Finish() {
  if (live_line_drawn_) {
    out_ << "\n";
    live_line_drawn_ = false;
  }
  out_.flush();
}

}  // namespace tuneledger::client
