// WatchRenderer: how `tunectl watch` shows a job's updates.
//
//   kTerminal  a one-line progress bar (progress_bar.h) redrawn in place with "\r" and
//              "erase to end of line", each event printed as a line above it
//   kPlain     stdout is not a terminal: an event line per event, and a progress line whenever
//              the state, reason, attempt or step changed (no control characters)
//   kJson      one JSON object (NDJSON) per event and per change of state, reason, attempt or
//              step: {"job": {...}, "event": {...}}; snapshots that only moved cost or timing
//              (heartbeats) are not repeated
//
// Notices (lost connection, reconnecting) go to `notices`: the same stream as `out` for people,
// stderr in json mode so stdout stays NDJSON.
// Thread safety: not thread-safe; one watch loop owns it.
#ifndef TUNELEDGER_CLIENT_WATCH_RENDERER_H_
#define TUNELEDGER_CLIENT_WATCH_RENDERER_H_

#include <functional>
#include <ostream>
#include <string>

#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger::client {

class WatchRenderer {
 public:
  enum class Mode { kTerminal, kPlain, kJson };

  // `terminal_width` is asked before each redraw (the window may be resized).
  WatchRenderer(Mode mode, std::ostream& out, std::ostream& notices,
                std::function<size_t()> terminal_width);
  WatchRenderer(const WatchRenderer&) = delete;
  WatchRenderer& operator=(const WatchRenderer&) = delete;

  // One update: the job snapshot and, if set, the event that produced it.
  void Update(const tuneledger::v1::WatchJobResponse& update);
  // A line for the person watching, e.g. "connection lost (UNAVAILABLE); reconnecting".
  void Notice(const std::string& text);
  // Leaves the last progress line in place and ends it with a newline (terminal mode).
  void Finish();

 private:
  void ClearLiveLine();
  void DrawLiveLine();

  const Mode mode_;
  std::ostream& out_;
  std::ostream& notices_;
  const std::function<size_t()> terminal_width_;
  tuneledger::v1::Job last_job_;
  bool have_job_ = false;
  bool live_line_drawn_ = false;  // terminal: a bar is on screen without its newline
  std::string last_key_;          // plain and json: MilestoneKey() of the last job line printed
};

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_WATCH_RENDERER_H_
