#include "client/watch_renderer.h"

#include <sstream>
#include <string>
#include <vector>

#include "client/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using tuneledger::v1::Job;
using tuneledger::v1::JobEvent;
using tuneledger::v1::WatchJobResponse;

WatchJobResponse Update(Job::State state, int step,
                        JobEvent::Kind event_kind = JobEvent::KIND_UNSPECIFIED) {
  WatchJobResponse update;
  Job* job = update.mutable_job();
  job->set_id("5");
  job->set_state(state);
  job->mutable_progress()->set_step(step);
  job->mutable_progress()->set_total_steps(10);
  job->mutable_progress()->set_loss(1.5);
  if (event_kind != JobEvent::KIND_UNSPECIFIED) {
    JobEvent* event = update.mutable_event();
    event->set_seq(step + 100);
    event->set_job_id("5");
    event->set_kind(event_kind);
    event->set_state(state);
    event->set_attempt(1);
    event->set_worker_id("w-1");
  }
  return update;
}

TEST(WatchRendererTest, TerminalRedrawsOneLineAndPrintsEventsAboveIt) {
  std::ostringstream out;
  WatchRenderer renderer(WatchRenderer::Mode::kTerminal, out, out, [] { return size_t{100}; });
  renderer.Update(Update(Job::RUNNING, 0, JobEvent::STARTED));
  renderer.Update(Update(Job::RUNNING, 4));
  renderer.Update(Update(Job::SUCCEEDED, 10, JobEvent::SUCCEEDED));
  renderer.Finish();
  const std::string text = out.str();
  // Every redraw starts with CR + erase-line; events end with a newline, the bar does not
  // until Finish().
  EXPECT_THAT(text, HasSubstr("\r\x1b[K"));
  EXPECT_THAT(text, HasSubstr(" STARTED attempt 1 on worker w-1\n"));
  EXPECT_THAT(text, HasSubstr("\r\x1b[Kjob 5 RUNNING [#"));
  EXPECT_THAT(text, HasSubstr("step 4/10 (40%)"));
  EXPECT_EQ(text.back(), '\n');
  // The bar is redrawn in place: its lines are not terminated one by one.
  EXPECT_THAT(text, Not(HasSubstr("ETA --\n")));
  // The last line is the final state, left on screen.
  const size_t last_redraw = text.rfind("\r\x1b[K");
  EXPECT_THAT(text.substr(last_redraw), HasSubstr("job 5 SUCCEEDED step 10/10"));
  for (size_t start = 0; start < text.size();) {  // no drawn line is wider than the terminal
    size_t end = text.find_first_of("\r\n", start);
    if (end == std::string::npos) end = text.size();
    EXPECT_LT(end - start, 100u);
    start = end + 1;
  }
}

TEST(WatchRendererTest, PlainModeHasNoControlCharactersAndSkipsRepeats) {
  std::ostringstream out;
  WatchRenderer renderer(WatchRenderer::Mode::kPlain, out, out, nullptr);
  renderer.Update(Update(Job::QUEUED, 0));
  renderer.Update(Update(Job::QUEUED, 0));  // no change: no new line
  renderer.Update(Update(Job::RUNNING, 0, JobEvent::STARTED));
  renderer.Update(Update(Job::RUNNING, 3));
  renderer.Notice("connection lost; reconnecting");
  renderer.Finish();
  const std::string text = out.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text,
            "job 5 QUEUED (waiting for a worker) step 0/10 (0%) $0.00\n"
            "--:--:-- STARTED attempt 1 on worker w-1\n"
            "job 5 RUNNING step 0/10 (0%) $0.00 ETA measuring\n"
            "job 5 RUNNING step 3/10 (30%) loss 1.5000 $0.00 ETA measuring\n"
            "connection lost; reconnecting\n");
}

TEST(WatchRendererTest, JsonModeWritesOneObjectPerUpdateAndNoticesElsewhere) {
  std::ostringstream out;
  std::ostringstream notices;
  WatchRenderer renderer(WatchRenderer::Mode::kJson, out, notices, nullptr);
  renderer.Update(Update(Job::RUNNING, 2, JobEvent::CHECKPOINT));
  renderer.Notice("reconnecting");
  renderer.Update(Update(Job::RUNNING, 3));
  renderer.Finish();
  std::istringstream lines(out.str());
  std::string first, second, extra;
  ASSERT_TRUE(std::getline(lines, first));
  ASSERT_TRUE(std::getline(lines, second));
  EXPECT_FALSE(std::getline(lines, extra)) << extra;
  EXPECT_THAT(first, HasSubstr(R"("job":{"id":"5")"));
  EXPECT_THAT(first, HasSubstr(R"("state":"RUNNING")"));
  EXPECT_THAT(first, HasSubstr(R"("kind":"CHECKPOINT")"));
  EXPECT_THAT(second, Not(HasSubstr(R"("event")")));
  EXPECT_EQ(notices.str(), "reconnecting\n");
}

TEST(WatchRendererTest, JsonModeSkipsSnapshotsThatOnlyMovedCostOrTime) {
  std::ostringstream out;
  std::ostringstream notices;
  WatchRenderer renderer(WatchRenderer::Mode::kJson, out, notices, nullptr);
  // The server sends a snapshot for each cost tick and heartbeat, several a second.
  for (int tick = 0; tick < 5; ++tick) {
    WatchJobResponse update = Update(Job::RUNNING, 3);
    update.mutable_job()->mutable_cost()->set_accrued_usd(0.01 * tick);
    update.mutable_job()->mutable_progress()->set_elapsed_seconds(tick);
    renderer.Update(update);
  }
  renderer.Update(Update(Job::RUNNING, 4));                        // a new step: a line
  renderer.Update(Update(Job::RUNNING, 4, JobEvent::CHECKPOINT));  // an event: a line
  renderer.Update(Update(Job::SUCCEEDED, 4));                      // a new state: a line
  renderer.Finish();
  std::istringstream lines(out.str());
  std::vector<std::string> seen;
  for (std::string line; std::getline(lines, line);) seen.push_back(line);
  ASSERT_EQ(seen.size(), 4u) << out.str();
  EXPECT_THAT(seen[0], HasSubstr(R"("step":3)"));
  EXPECT_THAT(seen[1], HasSubstr(R"("step":4)"));
  EXPECT_THAT(seen[2], HasSubstr(R"("kind":"CHECKPOINT")"));
  EXPECT_THAT(seen[3], HasSubstr(R"("state":"SUCCEEDED")"));
}

TEST(ExitCodeTest, OnlySucceededIsZero) {
  EXPECT_EQ(ExitCodeForFinalState(Job::SUCCEEDED), 0);
  EXPECT_EQ(ExitCodeForFinalState(Job::FAILED), 3);
  EXPECT_EQ(ExitCodeForFinalState(Job::CANCELLED), 4);
  EXPECT_EQ(ExitCodeForFinalState(Job::RUNNING), 5);
  EXPECT_TRUE(IsFinalState(Job::SUCCEEDED));
  EXPECT_TRUE(IsFinalState(Job::FAILED));
  EXPECT_TRUE(IsFinalState(Job::CANCELLED));
  EXPECT_FALSE(IsFinalState(Job::QUEUED));
  EXPECT_FALSE(IsFinalState(Job::RUNNING));
  EXPECT_THAT(ExitCodeHelp(), HasSubstr("3  watch: the job ended FAILED"));
}

}  // namespace
}  // namespace tuneledger::client
