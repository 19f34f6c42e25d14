#include "client/watch_loop.h"

#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/api/fake_job_service.h"
#include "tests/testing/status_matchers.h"

namespace tuneledger::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneledger::client::testing::FakeServer;
using ::tuneledger::client::testing::WatchScript;
using ::tuneledger::testing::StatusIs;
using tuneledger::v1::Job;
using tuneledger::v1::JobEvent;
using tuneledger::v1::WatchJobResponse;

JobEvent Event(int64_t seq, JobEvent::Kind kind) {
  JobEvent event;
  event.set_seq(seq);
  event.set_job_id("1");
  event.set_kind(kind);
  return event;
}

WatchJobResponse Snapshot(Job::State state, int step) {
  WatchJobResponse response;
  response.mutable_job()->set_id("1");
  response.mutable_job()->set_state(state);
  response.mutable_job()->mutable_progress()->set_step(step);
  return response;
}

WatchJobResponse WithEvent(WatchJobResponse response, JobEvent event) {
  *response.mutable_event() = std::move(event);
  return response;
}

WatchLoopOptions FastOptions() {
  WatchLoopOptions options;
  options.initial_backoff = absl::Milliseconds(1);
  options.max_backoff = absl::Milliseconds(5);
  options.reconnect_timeout = absl::Seconds(10);
  return options;
}

// Runs the loop with a JSON renderer and returns the seq of every event it printed, in order.
struct WatchRun {
  absl::StatusOr<Job> result;
  std::vector<int64_t> event_seqs;
  int updates = 0;
  std::string notices;
};

WatchRun RunWatch(const std::string& address, const WatchLoopOptions& options) {
  JobClient::Options client_options;
  client_options.address = address;
  JobClient client(client_options);
  std::ostringstream out;
  std::ostringstream notices;
  WatchRenderer renderer(WatchRenderer::Mode::kJson, out, notices, nullptr);
  WatchRun run;
  run.result = WatchUntilDone(client, "1", renderer, options);
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) {
    WatchJobResponse update;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &update).ok()) << line;
    ++run.updates;
    if (update.has_event()) run.event_seqs.push_back(update.event().seq());
  }
  run.notices = notices.str();
  return run;
}

TEST(WatchLoopTest, ReconnectsAfterABrokenStreamWithoutLosingOrRepeatingEvents) {
  FakeServer server;
  // Connection 1: history is events 1-2; the stream repeats 2, then breaks.
  server.service().AddEventsAnswer({Event(1, JobEvent::SUBMITTED), Event(2, JobEvent::STARTED)});
  WatchScript first;
  first.messages = {Snapshot(Job::RUNNING, 1),
                    WithEvent(Snapshot(Job::RUNNING, 1), Event(2, JobEvent::STARTED))};
  first.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server went away");
  server.service().AddWatchScript(first);
  // Connection 2: events 3-4 happened meanwhile; the stream repeats 4, then the job succeeds.
  server.service().AddEventsAnswer({Event(1, JobEvent::SUBMITTED), Event(2, JobEvent::STARTED),
                                    Event(3, JobEvent::CHECKPOINT),
                                    Event(4, JobEvent::CHECKPOINT)});
  WatchScript second;
  second.messages = {Snapshot(Job::RUNNING, 7),
                     WithEvent(Snapshot(Job::RUNNING, 8), Event(4, JobEvent::CHECKPOINT)),
                     WithEvent(Snapshot(Job::SUCCEEDED, 10), Event(5, JobEvent::SUCCEEDED))};
  server.service().AddWatchScript(second);

  WatchRun run = RunWatch(server.address(), FastOptions());
  ASSERT_OK(run.result);
  EXPECT_EQ(run.result->state(), Job::SUCCEEDED);
  EXPECT_THAT(run.event_seqs, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_EQ(server.service().watch_calls(), 2);
  EXPECT_THAT(run.notices, HasSubstr("connection lost"));
  EXPECT_THAT(run.notices, HasSubstr("reconnected"));
}

TEST(WatchLoopTest, StreamEndingBeforeTheJobDidIsReconnected) {
  FakeServer server;
  WatchScript first;
  first.messages = {Snapshot(Job::QUEUED, 0)};  // ends OK while the job still waits
  server.service().AddWatchScript(first);
  WatchScript second;
  second.messages = {Snapshot(Job::CANCELLED, 0)};
  server.service().AddWatchScript(second);
  WatchRun run = RunWatch(server.address(), FastOptions());
  ASSERT_OK(run.result);
  EXPECT_EQ(run.result->state(), Job::CANCELLED);
  EXPECT_EQ(server.service().watch_calls(), 2);
}

TEST(WatchLoopTest, AJobAlreadyFinishedEndsAfterItsSnapshot) {
  FakeServer server;
  server.service().AddEventsAnswer({Event(1, JobEvent::SUBMITTED), Event(2, JobEvent::FAILED)});
  WatchScript only;
  only.messages = {Snapshot(Job::FAILED, 3)};
  server.service().AddWatchScript(only);
  WatchRun run = RunWatch(server.address(), FastOptions());
  ASSERT_OK(run.result);
  EXPECT_EQ(run.result->state(), Job::FAILED);
  EXPECT_THAT(run.event_seqs, ElementsAre(1, 2));
  EXPECT_EQ(server.service().watch_calls(), 1);
}

TEST(WatchLoopTest, ErrorsARetryCannotFixEndTheWatchAtOnce) {
  FakeServer server;
  WatchScript only;
  only.status = grpc::Status(grpc::StatusCode::NOT_FOUND, "job 1 not found");
  server.service().AddWatchScript(only);
  WatchRun run = RunWatch(server.address(), FastOptions());
  EXPECT_THAT(run.result, StatusIs(absl::StatusCode::kNotFound, HasSubstr("job 1 not found")));
  EXPECT_EQ(server.service().watch_calls(), 1);
}

TEST(WatchLoopTest, GivesUpWhenTheServerStaysAwayPastTheReconnectTimeout) {
  FakeServer server;
  WatchScript first;
  first.messages = {Snapshot(Job::RUNNING, 1)};
  first.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
  server.service().AddWatchScript(first);  // later calls: UNAVAILABLE (no script left)
  WatchLoopOptions options = FastOptions();
  options.reconnect_timeout = absl::Milliseconds(50);
  WatchRun run = RunWatch(server.address(), options);
  EXPECT_THAT(run.result, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("gave up")));
  EXPECT_GE(server.service().watch_calls(), 2);
}

TEST(WatchLoopTest, AServerNeverReachedIsAnErrorAtOnce) {
  std::string address;
  {
    FakeServer gone;
    address = gone.address();
  }
  WatchLoopOptions options = FastOptions();
  options.reconnect_timeout = absl::Hours(1);  // must not be waited for
  WatchRun run = RunWatch(address, options);
  EXPECT_THAT(run.result, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(run.updates, 0);
}

}  // namespace
}  // namespace tuneledger::client
