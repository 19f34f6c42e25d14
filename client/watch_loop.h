// WatchUntilDone: the loop behind `tunectl watch`. It follows a job's WatchJob stream until
// the job reaches a final state and survives broken streams:
//
// - on every (re)connection the first message is the current snapshot; the loop then fetches
//   the job's event log and shows the events it has not shown yet (on the first connection,
//   the job's history), so no event is lost or shown twice while it was away (events are
//   ordered by their per-server seq);
// - when the stream ends before the job did (server restarted, network), it reconnects with
//   exponential backoff, and gives up with UNAVAILABLE once the server stayed unreachable for
//   `reconnect_timeout`;
// - errors that a retry cannot fix (NOT_FOUND, PERMISSION_DENIED, ...), and any error before the
//   first connection (a wrong address), end it at once.
// Thread safety: one call per JobClient/WatchRenderer pair; it blocks until the job ends.
#ifndef TUNELEDGER_CLIENT_WATCH_LOOP_H_
#define TUNELEDGER_CLIENT_WATCH_LOOP_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/job_client.h"
#include "client/watch_renderer.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger::client {

struct WatchLoopOptions {
  absl::Duration reconnect_timeout = absl::Seconds(120);
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
};

// True for the codes after which reconnecting can help.
bool IsRetryableWatchError(absl::StatusCode code);

// Returns the job in its final state, or the error that ended the watch.
absl::StatusOr<tuneledger::v1::Job> WatchUntilDone(JobClient& client, const std::string& job_id,
                                                   WatchRenderer& renderer,
                                                   const WatchLoopOptions& options);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_WATCH_LOOP_H_
