#include "worker/agent/trainer_output_parser.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tuneledger::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;
using ::tuneledger::v1::TrainerUpdate;

TEST(ParseTrainerLineTest, ProgressLineFillsEveryField) {
  absl::StatusOr<TrainerLine> line = ParseTrainerLine(
      R"({"type":"progress","step":12,"total_steps":200,"epoch":0.06,"loss":3.91,"lr":2e-05,)"
      R"("tokens":24576,"tokens_per_sec":1530.2,"elapsed_s":16.1,"future_field":[1,2]})");
  ASSERT_OK(line);
  EXPECT_EQ(line->type, TrainerLine::Type::kProgress);
  const TrainerUpdate& u = line->update;
  EXPECT_EQ(u.kind(), TrainerUpdate::PROGRESS);
  EXPECT_EQ(u.step(), 12);
  EXPECT_EQ(u.total_steps(), 200);
  EXPECT_DOUBLE_EQ(u.epoch(), 0.06);
  EXPECT_DOUBLE_EQ(u.loss(), 3.91);
  EXPECT_DOUBLE_EQ(u.learning_rate(), 2e-05);
  EXPECT_EQ(u.tokens(), 24576);
  EXPECT_DOUBLE_EQ(u.tokens_per_second(), 1530.2);
  EXPECT_DOUBLE_EQ(u.elapsed_seconds(), 16.1);
}

// Data selection's scoring lines become SCORING updates; only the last one says done and kept.
TEST(ParseTrainerLineTest, ScoringLinesFillTheScoringFields) {
  absl::StatusOr<TrainerLine> first = ParseTrainerLine(
      R"({"type":"scoring","scored":0,"total":2400,"method":"entropy","elapsed_s":3.5})");
  ASSERT_OK(first);
  EXPECT_EQ(first->type, TrainerLine::Type::kScoring);
  EXPECT_EQ(first->update.kind(), TrainerUpdate::SCORING);
  EXPECT_EQ(first->update.scored_examples(), 0);
  EXPECT_EQ(first->update.total_examples(), 2400);
  EXPECT_FALSE(first->update.scoring_done());
  EXPECT_EQ(first->update.kept_examples(), 0);
  EXPECT_DOUBLE_EQ(first->update.elapsed_seconds(), 3.5);

  absl::StatusOr<TrainerLine> last = ParseTrainerLine(
      R"({"type":"scoring","scored":2400,"total":2400,"method":"loss","elapsed_s":9.25,)"
      R"("done":true,"kept":1200})");
  ASSERT_OK(last);
  EXPECT_EQ(last->update.kind(), TrainerUpdate::SCORING);
  EXPECT_EQ(last->update.scored_examples(), 2400);
  EXPECT_EQ(last->update.total_examples(), 2400);
  EXPECT_TRUE(last->update.scoring_done());
  EXPECT_EQ(last->update.kept_examples(), 1200);
  EXPECT_DOUBLE_EQ(last->update.elapsed_seconds(), 9.25);
  EXPECT_EQ(last->update.step(), 0) << "scoring comes before the first step";
}

TEST(ParseTrainerLineTest, EveryTypeOfTheProtocol) {
  absl::StatusOr<TrainerLine> started =
      ParseTrainerLine(R"({"type":"started","total_steps":200,"start_step":50,"device":"cpu"})");
  ASSERT_OK(started);
  EXPECT_EQ(started->type, TrainerLine::Type::kStarted);
  EXPECT_EQ(started->total_steps, 200);
  EXPECT_EQ(started->start_step, 50);

  absl::StatusOr<TrainerLine> eval =
      ParseTrainerLine(R"({"type":"eval","step":50,"eval_loss":2.12})");
  ASSERT_OK(eval);
  EXPECT_EQ(eval->update.kind(), TrainerUpdate::EVAL);
  EXPECT_EQ(eval->update.step(), 50);
  EXPECT_DOUBLE_EQ(eval->update.eval_loss(), 2.12);

  absl::StatusOr<TrainerLine> checkpoint =
      ParseTrainerLine(R"({"type":"checkpoint","step":50,"path":"/w/c/step-50"})");
  ASSERT_OK(checkpoint);
  EXPECT_EQ(checkpoint->type, TrainerLine::Type::kCheckpoint);
  EXPECT_EQ(checkpoint->update.kind(), TrainerUpdate::CHECKPOINT);
  EXPECT_EQ(checkpoint->update.checkpoint_path(), "/w/c/step-50");
  EXPECT_EQ(checkpoint->checkpoint_path, "/w/c/step-50");

  absl::StatusOr<TrainerLine> stopped =
      ParseTrainerLine(R"({"type":"stopped","step":61,"checkpoint":"/w/c/step-61"})");
  ASSERT_OK(stopped);
  EXPECT_EQ(stopped->type, TrainerLine::Type::kStopped);
  EXPECT_EQ(stopped->update.step(), 61);
  EXPECT_EQ(stopped->checkpoint_path, "/w/c/step-61");
  // Stopped while scoring for data selection: before any checkpoint, so none is named.
  absl::StatusOr<TrainerLine> stopped_scoring = ParseTrainerLine(R"({"type":"stopped","step":0})");
  ASSERT_OK(stopped_scoring);
  EXPECT_EQ(stopped_scoring->type, TrainerLine::Type::kStopped);
  EXPECT_EQ(stopped_scoring->checkpoint_path, "");

  absl::StatusOr<TrainerLine> done = ParseTrainerLine(
      R"({"type":"done","step":200,"adapter_dir":"/w/adapter","train_loss":1.41,"eval_loss":null})");
  ASSERT_OK(done);
  EXPECT_EQ(done->type, TrainerLine::Type::kDone);
  EXPECT_EQ(done->adapter_dir, "/w/adapter");
  EXPECT_EQ(done->update.step(), 200);
  EXPECT_DOUBLE_EQ(done->update.loss(), 1.41);
  EXPECT_DOUBLE_EQ(done->update.eval_loss(), 0);

  absl::StatusOr<TrainerLine> error =
      ParseTrainerLine(R"({"type":"error","message":"config.json: no field \"hidden_size\""})");
  ASSERT_OK(error);
  EXPECT_EQ(error->type, TrainerLine::Type::kError);
  EXPECT_EQ(error->message, "config.json: no field \"hidden_size\"");

  EXPECT_EQ(done->reason, v1::Job::REASON_UNSPECIFIED);
  EXPECT_EQ(error->reason, v1::Job::REASON_UNSPECIFIED);

  absl::StatusOr<TrainerLine> early = ParseTrainerLine(
      R"({"type":"done","step":40,"adapter_dir":"/w/adapter","eval_loss":1.2,"early_stopped":true,"best_step":20})");
  ASSERT_OK(early);
  EXPECT_EQ(early->reason, v1::Job::EARLY_STOPPED);
  EXPECT_EQ(early->update.step(), 40);
  absl::StatusOr<TrainerLine> diverged = ParseTrainerLine(
      R"({"type":"error","message":"loss diverged at step 9","reason":"loss_diverged"})");
  ASSERT_OK(diverged);
  EXPECT_EQ(diverged->reason, v1::Job::LOSS_DIVERGED);
  absl::StatusOr<TrainerLine> other_reason =
      ParseTrainerLine(R"({"type":"error","message":"x","reason":"budget_exceeded"})");
  ASSERT_OK(other_reason);
  EXPECT_EQ(other_reason->reason, v1::Job::REASON_UNSPECIFIED) << "only the trainer's own reasons";

  absl::StatusOr<TrainerLine> unknown = ParseTrainerLine(R"({"type":"sample","text":"hi"})");
  ASSERT_OK(unknown);
  EXPECT_EQ(unknown->type, TrainerLine::Type::kUnknown);
  EXPECT_EQ(unknown->type_name, "sample");
}

TEST(ParseTrainerLineTest, WholeNumbersWrittenAsFloatsAreAccepted) {
  absl::StatusOr<TrainerLine> line = ParseTrainerLine(R"({"type":"progress","step":3.0})");
  ASSERT_OK(line);
  EXPECT_EQ(line->update.step(), 3);
}

// One row per way a line can be malformed; each names what is wrong.
TEST(ParseTrainerLineTest, MalformedLinesAreErrorsNamingTheProblem) {
  struct Case {
    std::string line;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"", "not a JSON object"},
      {"loading weights...", "not a JSON object: loading weights..."},
      {"[1,2]", "not a JSON object"},
      {R"({"type":"progress","step":1)", "not a JSON object"},
      {R"({"step":1})", "no string \"type\""},
      {R"({"type":7})", "no string \"type\""},
      {R"({"type":"progress"})", "missing field \"step\""},
      {R"({"type":"progress","step":"3"})", "field \"step\" must be an integer, got \"3\""},
      {R"({"type":"progress","step":2.5})", "field \"step\" must be an integer"},
      {R"({"type":"progress","step":1,"loss":"nan"})", "field \"loss\" must be a number"},
      {R"({"type":"eval","step":1})", "missing field \"eval_loss\""},
      {R"({"type":"checkpoint","step":1})", "missing field \"path\""},
      {R"({"type":"checkpoint","step":1,"path":5})", "field \"path\" must be a string"},
      {R"({"type":"stopped"})", "missing field \"step\""},
      {R"({"type":"stopped","step":1,"checkpoint":3})", "field \"checkpoint\" must be a string"},
      {R"({"type":"scoring","total":10})", "missing field \"scored\""},
      {R"({"type":"scoring","scored":1})", "missing field \"total\""},
      {R"({"type":"scoring","scored":"1","total":10})", "field \"scored\" must be a number"},
      {R"({"type":"scoring","scored":10,"total":10,"done":1})",
       "field \"done\" must be true or false, got 1"},
      {R"({"type":"done","step":1})", "missing field \"adapter_dir\""},
      {R"({"type":"error"})", "missing field \"message\""},
      {R"({"type":"done","adapter_dir":"/a","early_stopped":1})",
       "field \"early_stopped\" must be true or false, got 1"},
      {R"({"type":"error","message":"m","reason":7})", "field \"reason\" must be a string"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseTrainerLine(c.line).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.expected)))
        << "line: " << c.line;
  }
}

TEST(LineSplitterTest, JoinsPiecesAndSplitsLines) {
  LineSplitter splitter;
  EXPECT_THAT(splitter.Feed("{\"a\":"), ElementsAre());
  EXPECT_THAT(splitter.Feed("1}\n{\"b\":2}\r\n{\"c\""), ElementsAre("{\"a\":1}", "{\"b\":2}"));
  EXPECT_THAT(splitter.Feed(":3}\n\n"), ElementsAre("{\"c\":3}", ""));
  EXPECT_EQ(splitter.Finish(), std::nullopt);
  EXPECT_THAT(splitter.Feed("tail without newline"), ElementsAre());
  EXPECT_EQ(splitter.Finish(), "tail without newline");
}

TEST(LineSplitterTest, CutsOverlongLinesAndDropsTheirRest) {
  LineSplitter splitter(/*max_line_bytes=*/8);
  EXPECT_THAT(splitter.Feed("0123456789"), ElementsAre("01234567"));
  EXPECT_THAT(splitter.Feed("abcdef"), ElementsAre());  // still the same long line
  EXPECT_THAT(splitter.Feed("ghi\nok\n"), ElementsAre("ok"));
  EXPECT_THAT(splitter.Feed("01234567890\nok2\n"), ElementsAre("01234567", "ok2"));
}

}  // namespace
}  // namespace tuneledger::worker
