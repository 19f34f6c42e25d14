#include "client/watch_loop.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/exit_codes.h"
#include "client/value_format.h"

namespace tuneledger::client {
namespace {

using tuneledger::v1::Job;
using tuneledger::v1::JobEvent;
using tuneledger::v1::WatchJobResponse;

// What one watch has shown so far; shared by all its connections.
struct WatchState {
  int64_t last_shown_seq = 0;
  Job latest;
  bool have_latest = false;
};

// Shows the events of the log that are newer than the last one shown, each with `snapshot`;
// shows the snapshot alone when there are none.
void CatchUp(JobClient& client, const std::string& job_id, const Job& snapshot,
             WatchRenderer& renderer, WatchState& state) {
  absl::StatusOr<std::vector<JobEvent>> events = client.ListEvents(job_id);
  bool shown = false;
  if (events.ok()) {
    std::sort(events->begin(), events->end(),
              [](const JobEvent& a, const JobEvent& b) { return a.seq() < b.seq(); });
    for (const JobEvent& event : *events) {
      if (event.seq() <= state.last_shown_seq) continue;
      WatchJobResponse update;
      *update.mutable_job() = snapshot;
      *update.mutable_event() = event;
      renderer.Update(update);
      state.last_shown_seq = event.seq();
      shown = true;
    }
  } else {
    renderer.Notice(absl::StrCat("could not read the event log (", events.status().ToString(),
                                 "); showing live events only"));
  }
  if (!shown) {
    WatchJobResponse update;
    *update.mutable_job() = snapshot;
    renderer.Update(update);
  }
}

}  // namespace

bool IsRetryableWatchError(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kCancelled:  // e.g. the server cancelled streams while shutting down
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kOk:  // the stream ended before the job did
      return true;
    default:
      return false;
  }
}

absl::StatusOr<Job> WatchUntilDone(JobClient& client, const std::string& job_id,
                                   WatchRenderer& renderer, const WatchLoopOptions& options) {
  WatchState state;
  absl::Duration backoff = options.initial_backoff;
  absl::Time outage_start = absl::InfinitePast();  // InfinitePast: connected (no outage)
  bool ever_connected = false;
  while (true) {
    bool connected = false;
    const absl::Status status = client.Watch(job_id, [&](const WatchJobResponse& response) {
      if (!connected) {
        connected = true;
        ever_connected = true;
        if (outage_start != absl::InfinitePast()) renderer.Notice("reconnected");
        outage_start = absl::InfinitePast();
        backoff = options.initial_backoff;
        CatchUp(client, job_id, response.job(), renderer, state);
      } else if (response.has_event() && response.event().seq() <= state.last_shown_seq) {
        WatchJobResponse without_event;  // shown already by the catch-up
        *without_event.mutable_job() = response.job();
        renderer.Update(without_event);
      } else {
        renderer.Update(response);
        if (response.has_event()) state.last_shown_seq = response.event().seq();
      }
      state.latest = response.job();
      state.have_latest = true;
      return !IsFinalState(response.job().state());  // nothing follows a final state
    });

    if (state.have_latest && IsFinalState(state.latest.state())) {
      renderer.Finish();
      return state.latest;
    }
    // Reconnecting is for a stream that broke; a server that never answered is an error now.
    if (!ever_connected || !IsRetryableWatchError(status.code())) {
      renderer.Finish();
      return status;
    }
    const absl::Time now = absl::Now();
    if (outage_start == absl::InfinitePast()) {
      outage_start = now;
      renderer.Notice(absl::StrCat("connection lost (",
                                   status.ok() ? "stream ended" : status.ToString(),
                                   "); reconnecting"));
    }
    if (now - outage_start >= options.reconnect_timeout) {
      renderer.Finish();
      return absl::UnavailableError(absl::StrCat(
          "gave up after ", FormatDuration(absl::ToDoubleSeconds(options.reconnect_timeout)),
          " without a connection to the server; last error: ",
          status.ok() ? "stream ended" : status.ToString()));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

}  // namespace tuneledger::client
