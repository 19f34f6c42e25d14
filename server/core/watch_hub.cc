#include "server/core/watch_hub.h"

#include <utility>

namespace tuneledger {

std::optional<WatchUpdate> WatchHub::Subscription::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || closed_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (queue_.empty()) return std::nullopt;
  WatchUpdate update = std::move(queue_.front());
  queue_.pop_front();
  if (update.event.has_value()) --pending_events_;
  return update;
}

bool WatchHub::Subscription::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

bool WatchHub::Subscription::lagging() const {
  absl::MutexLock lock(&mu_);
  return lagging_;
}

void WatchHub::Subscription::Push(WatchUpdate update) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  if (!update.event.has_value()) {
    if (!queue_.empty() && !queue_.back().event.has_value()) {
      queue_.back() = std::move(update);  // coalesce: only the latest progress matters
    } else {
      queue_.push_back(std::move(update));
    }
    return;
  }
  if (pending_events_ >= max_pending_events_) {
    // Dropping an event would lie to the watcher; ending its stream does not.
    lagging_ = true;
    closed_ = true;
    queue_.clear();
    pending_events_ = 0;
    return;
  }
  ++pending_events_;
  queue_.push_back(std::move(update));
}

void WatchHub::Subscription::Close(bool lagging) {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  lagging_ = lagging_ || lagging;
}

WatchHub::WatchHub(size_t max_pending_events) : max_pending_events_(max_pending_events) {}

std::shared_ptr<WatchHub::Subscription> WatchHub::Subscribe(const std::string& job_id) {
  auto subscription = std::make_shared<Subscription>(max_pending_events_);
  absl::MutexLock lock(&mu_);
  if (closed_) {
    subscription->Close(/*lagging=*/false);
  } else {
    by_job_[job_id].push_back(subscription);
  }
  return subscription;
}

std::vector<std::shared_ptr<WatchHub::Subscription>> WatchHub::LiveSubscriptions(
    const std::string& job_id) {
  std::vector<std::shared_ptr<Subscription>> live;
  auto it = by_job_.find(job_id);
  if (it == by_job_.end()) return live;
  std::vector<std::weak_ptr<Subscription>>& subscriptions = it->second;
  std::vector<std::weak_ptr<Subscription>> kept;
  for (const std::weak_ptr<Subscription>& weak : subscriptions) {
    if (std::shared_ptr<Subscription> subscription = weak.lock()) {
      live.push_back(subscription);
      kept.push_back(weak);
    }
  }
  if (kept.empty()) {
    by_job_.erase(it);
  } else {
    subscriptions = std::move(kept);
  }
  return live;
}

void WatchHub::Publish(const v1::Job& job, const v1::JobEvent* event) {
  std::vector<std::shared_ptr<Subscription>> live;
  {
    absl::MutexLock lock(&mu_);
    live = LiveSubscriptions(job.id());
  }
  for (const std::shared_ptr<Subscription>& subscription : live) {
    WatchUpdate update{job, std::nullopt};
    if (event != nullptr) update.event = *event;
    subscription->Push(std::move(update));
  }
}

void WatchHub::CloseAll() {
  std::vector<std::shared_ptr<Subscription>> live;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (auto& [job_id, subscriptions] : by_job_) {
      for (const std::weak_ptr<Subscription>& weak : subscriptions) {
        if (std::shared_ptr<Subscription> subscription = weak.lock()) live.push_back(subscription);
      }
    }
    by_job_.clear();
  }
  for (const std::shared_ptr<Subscription>& subscription : live) {
    subscription->Close(/*lagging=*/false);
  }
}

int WatchHub::WatcherCount(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(LiveSubscriptions(job_id).size());
}

}  // namespace tuneledger
