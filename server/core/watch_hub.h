// WatchHub: fan-out of job updates to WatchJob streams.
//
// Publish() never blocks on a watcher: each subscription has its own queue, guarded by its own
// mutex held only to push or pop. Events are never dropped; progress-only updates coalesce (a
// new one replaces a progress-only update still waiting at the back of the queue), so a slow
// watcher sees every event and the latest progress, not every report. A watcher that falls
// behind by more than max_pending_events events is marked lagging and closed: its stream ends
// (RESOURCE_EXHAUSTED) and the client re-reads the job and its event log.
//
// Thread safety: every method may be called from any thread. mu_ guards the subscription lists;
// each Subscription's mu_ guards its queue. Publish takes them one after the other, never both.
#ifndef TUNELEDGER_SERVER_CORE_WATCH_HUB_H_
#define TUNELEDGER_SERVER_CORE_WATCH_HUB_H_

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

// One update as WatchJob sends it: the job after the change and the event, if it was one.
struct WatchUpdate {
  v1::Job job;
  std::optional<v1::JobEvent> event;
};

class WatchHub {
 public:
  class Subscription {
   public:
    explicit Subscription(size_t max_pending_events) : max_pending_events_(max_pending_events) {}

    // The next update, waiting up to `timeout` (wall time: this only bounds how long a stream
    // thread sleeps). nullopt on timeout, or at once when closed and drained.
    std::optional<WatchUpdate> Next(absl::Duration timeout);
    // Closed by the hub (shutdown) or for lagging; a closed subscription gets no more updates.
    bool closed() const;
    bool lagging() const;

   private:
    friend class WatchHub;
    void Push(WatchUpdate update);
    void Close(bool lagging);

    const size_t max_pending_events_;
    mutable absl::Mutex mu_;
    std::deque<WatchUpdate> queue_ ABSL_GUARDED_BY(mu_);
    size_t pending_events_ ABSL_GUARDED_BY(mu_) = 0;
    bool closed_ ABSL_GUARDED_BY(mu_) = false;
    bool lagging_ ABSL_GUARDED_BY(mu_) = false;
  };

  explicit WatchHub(size_t max_pending_events = 1024);
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Updates of `job_id` published from now on go to the returned subscription until it is
  // dropped (the hub holds it weakly).
  std::shared_ptr<Subscription> Subscribe(const std::string& job_id);
  // Sends `job` (with `event`, or as a progress-only update) to the job's watchers.
  void Publish(const v1::Job& job, const v1::JobEvent* event);
  // Closes every subscription and refuses new ones as closed (server shutdown).
  void CloseAll();
  // Live subscriptions of a job (tests).
  int WatcherCount(const std::string& job_id);

 private:
  std::vector<std::shared_ptr<Subscription>> LiveSubscriptions(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_pending_events_;
  absl::Mutex mu_;
  std::map<std::string, std::vector<std::weak_ptr<Subscription>>> by_job_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_WATCH_HUB_H_
