#include "server/core/watch_hub.h"

#include <memory>
#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger {
namespace {

using ::testing::ElementsAre;

v1::Job JobAtStep(int step) {
  v1::Job job;
  job.set_id("1");
  job.set_state(v1::Job::RUNNING);
  job.mutable_progress()->set_step(step);
  return job;
}

v1::JobEvent Event(v1::JobEvent::Kind kind, int64_t seq) {
  v1::JobEvent event;
  event.set_job_id("1");
  event.set_kind(kind);
  event.set_seq(seq);
  return event;
}

// What a watcher drains right now: "E<seq>" for events, "P<step>" for progress.
std::vector<std::string> Drain(WatchHub::Subscription& subscription) {
  std::vector<std::string> seen;
  while (std::optional<WatchUpdate> update = subscription.Next(absl::ZeroDuration())) {
    seen.push_back(update->event.has_value() ? "E" + std::to_string(update->event->seq())
                                             : "P" + std::to_string(update->job.progress().step()));
  }
  return seen;
}

TEST(WatchHubTest, ProgressCoalescesButEventsAreNeverDropped) {
  WatchHub hub;
  std::shared_ptr<WatchHub::Subscription> slow = hub.Subscribe("1");
  const v1::JobEvent started = Event(v1::JobEvent::STARTED, 10);
  const v1::JobEvent checkpoint = Event(v1::JobEvent::CHECKPOINT, 11);
  hub.Publish(JobAtStep(0), &started);
  for (int step = 1; step <= 50; ++step) hub.Publish(JobAtStep(step), nullptr);
  hub.Publish(JobAtStep(50), &checkpoint);
  for (int step = 51; step <= 99; ++step) hub.Publish(JobAtStep(step), nullptr);
  EXPECT_THAT(Drain(*slow), ElementsAre("E10", "P50", "E11", "P99"));
}

TEST(WatchHubTest, EveryWatcherOfTheJobGetsItsOwnCopy) {
  WatchHub hub;
  std::shared_ptr<WatchHub::Subscription> first = hub.Subscribe("1");
  std::shared_ptr<WatchHub::Subscription> second = hub.Subscribe("1");
  std::shared_ptr<WatchHub::Subscription> other_job = hub.Subscribe("2");
  const v1::JobEvent done = Event(v1::JobEvent::SUCCEEDED, 3);
  hub.Publish(JobAtStep(7), &done);
  EXPECT_THAT(Drain(*first), ElementsAre("E3"));
  EXPECT_THAT(Drain(*second), ElementsAre("E3"));
  EXPECT_TRUE(Drain(*other_job).empty());
  EXPECT_EQ(hub.WatcherCount("1"), 2);
  first.reset();
  EXPECT_EQ(hub.WatcherCount("1"), 1) << "a dropped subscription is forgotten";
}

TEST(WatchHubTest, AWatcherTooFarBehindIsClosedAsLaggingInsteadOfLosingEvents) {
  WatchHub hub(/*max_pending_events=*/4);
  std::shared_ptr<WatchHub::Subscription> stuck = hub.Subscribe("1");
  std::shared_ptr<WatchHub::Subscription> reader = hub.Subscribe("1");
  for (int seq = 1; seq <= 5; ++seq) {
    const v1::JobEvent event = Event(v1::JobEvent::CHECKPOINT, seq);
    hub.Publish(JobAtStep(seq), &event);  // never blocks, however slow `stuck` is
    EXPECT_EQ(Drain(*reader).size(), 1u);
  }
  EXPECT_TRUE(stuck->lagging());
  EXPECT_TRUE(stuck->closed());
  EXPECT_FALSE(stuck->Next(absl::ZeroDuration()).has_value());
  EXPECT_FALSE(reader->lagging());
}

TEST(WatchHubTest, CloseAllEndsEveryWatchAndRefusesNewOnes) {
  WatchHub hub;
  std::shared_ptr<WatchHub::Subscription> watcher = hub.Subscribe("1");
  hub.CloseAll();
  EXPECT_TRUE(watcher->closed());
  EXPECT_FALSE(watcher->lagging());
  EXPECT_FALSE(watcher->Next(absl::Seconds(10)).has_value()) << "returns at once when closed";
  EXPECT_TRUE(hub.Subscribe("1")->closed());
}

}  // namespace
}  // namespace tuneledger
