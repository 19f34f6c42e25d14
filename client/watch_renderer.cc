#include "client/watch_renderer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "client/output_render.h"
#include "client/progress_bar.h"

namespace tuneledger::client {
namespace {

// Carriage return, then ANSI "erase to end of line".
constexpr char kClearLine[] = "\r\x1b[K";

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
    case Mode::kJson:
      out_ << ToJson(update) << "\n";
      break;
    case Mode::kTerminal:
      if (update.has_event()) {
        ClearLiveLine();
        out_ << EventLine(update.event()) << "\n";
      }
      DrawLiveLine();
      break;
    case Mode::kPlain: {
      if (update.has_event()) out_ << EventLine(update.event()) << "\n";
      const std::string key = absl::StrCat(update.job().state(), "/", update.job().reason(), "/",
                                           update.job().progress().step());
      if (key != last_plain_key_) {
        out_ << FormatProgressLine(update.job(), ProgressLineOptions{}) << "\n";
        last_plain_key_ = key;
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
