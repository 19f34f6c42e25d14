#include "client/job_client.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
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

Job MakeJob(const std::string& id) {
  Job job;
  job.set_id(id);
  job.set_state(Job::QUEUED);
  return job;
}

JobClient::Options OptionsFor(const FakeServer& server, const std::string& token = "") {
  JobClient::Options options;
  options.address = server.address();
  options.token = token;
  options.deadline = absl::Seconds(7);
  return options;
}

TEST(JobClientTest, UnaryCallsCarryTheTokenAndTheDeadline) {
  FakeServer server;
  server.service().SetJobs({MakeJob("1")}, 10);
  JobClient client(OptionsFor(server, "s3cret"));
  absl::StatusOr<Job> job = client.Get("1");
  ASSERT_OK(job);
  EXPECT_EQ(job->id(), "1");
  const auto call = server.service().last_call();
  EXPECT_EQ(call.authorization, "Bearer s3cret");
  EXPECT_GT(call.deadline_remaining, absl::ZeroDuration());
  // gRPC's grpc-timeout header rounds the timeout up to its coarser units, and the server
  // takes its deadline from when it read the header: allow a little over the 7 s.
  EXPECT_LE(call.deadline_remaining, absl::Seconds(7) + absl::Milliseconds(500));
}

TEST(JobClientTest, NoTokenMeansNoAuthorizationMetadata) {
  FakeServer server;
  server.service().SetJobs({MakeJob("1")}, 10);
  JobClient client(OptionsFor(server));
  ASSERT_OK(client.Get("1"));
  EXPECT_FALSE(server.service().last_call().authorization.has_value());
}

TEST(JobClientTest, ServerErrorsComeBackWithTheirCodeAndMessage) {
  FakeServer server;
  JobClient client(OptionsFor(server));
  EXPECT_THAT(client.Get("404"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("job 404")));
}

TEST(JobClientTest, ListAllFollowsEveryPage) {
  FakeServer server;
  server.service().SetJobs({MakeJob("5"), MakeJob("4"), MakeJob("3"), MakeJob("2"), MakeJob("1")},
                           2);
  JobClient client(OptionsFor(server));
  absl::StatusOr<std::vector<Job>> jobs = client.ListAll({});
  ASSERT_OK(jobs);
  std::vector<std::string> ids;
  for (const Job& job : *jobs) ids.push_back(job.id());
  EXPECT_THAT(ids, ElementsAre("5", "4", "3", "2", "1"));
  EXPECT_THAT(server.service().page_tokens_seen(), ElementsAre("", "page-1", "page-2"));
}

TEST(JobClientTest, UnreachableServerIsUnavailable) {
  int port = 0;
  {  // a port that was free a moment ago: nothing listens there now
    FakeServer server;
    port = std::stoi(server.address().substr(server.address().rfind(':') + 1));
  }
  JobClient::Options options;
  options.address = "127.0.0.1:" + std::to_string(port);
  options.deadline = absl::Seconds(5);
  JobClient client(options);
  EXPECT_THAT(client.Get("1"), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(JobClientTest, WatchHasNoDeadlineAndEndsWithTheServersStatus) {
  FakeServer server;
  WatchScript script;
  script.messages.resize(2);
  script.messages[0].mutable_job()->set_id("9");
  script.messages[1].mutable_job()->set_id("9");
  script.messages[1].mutable_job()->set_state(Job::SUCCEEDED);
  server.service().AddWatchScript(script);
  JobClient client(OptionsFor(server, "t"));
  int updates = 0;
  EXPECT_OK(client.Watch("9", [&](const tuneledger::v1::WatchJobResponse&) {
    ++updates;
    return true;
  }));
  EXPECT_EQ(updates, 2);
  EXPECT_EQ(server.service().last_watch_call().deadline_remaining, absl::InfiniteDuration());
  EXPECT_EQ(server.service().last_watch_call().authorization, "Bearer t");
}

TEST(JobClientTest, CancelWatchFromAnotherThreadEndsABlockedWatch) {
  FakeServer server;
  WatchScript script;
  script.messages.resize(1);
  script.block_until_cancelled = true;
  server.service().AddWatchScript(script);
  JobClient client(OptionsFor(server));
  absl::Notification first_update;
  absl::Status status;
  std::thread watcher([&] {
    status = client.Watch("1", [&](const tuneledger::v1::WatchJobResponse&) {
      if (!first_update.HasBeenNotified()) first_update.Notify();
      return true;
    });
  });
  ASSERT_TRUE(first_update.WaitForNotificationWithTimeout(absl::Seconds(10)));
  client.CancelWatch();
  watcher.join();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled));
}

TEST(JobClientTest, OnUpdateReturningFalseStopsTheWatch) {
  FakeServer server;
  WatchScript script;
  script.messages.resize(1);
  script.block_until_cancelled = true;
  server.service().AddWatchScript(script);
  JobClient client(OptionsFor(server));
  EXPECT_THAT(client.Watch("1", [](const tuneledger::v1::WatchJobResponse&) { return false; }),
              StatusIs(absl::StatusCode::kCancelled));
}

}  // namespace
}  // namespace tuneledger::client
