#include "client/cli_args.h"

#include <string>
#include <vector>

#include "client/command_table.h"
#include "client/help_text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tuneledger::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tuneledger::testing::StatusIs;

absl::StatusOr<CommandLine> Parse(std::vector<std::string> args) { return ParseCommandLine(args); }

TEST(ParseCommandLineTest, GlobalFlagsBeforeTheCommand) {
  absl::StatusOr<CommandLine> line =
      Parse({"--server", "10.0.0.1:7000", "--token=abc", "--output", "json", "list"});
  ASSERT_OK(line);
  EXPECT_EQ(line->command, "list");
  EXPECT_EQ(line->server, "10.0.0.1:7000");
  EXPECT_EQ(line->token, "abc");
  EXPECT_EQ(line->output, OutputFormat::kJson);
}

TEST(ParseCommandLineTest, GlobalFlagsAfterTheCommand) {
  absl::StatusOr<CommandLine> line =
      Parse({"list", "--output", "json", "--server=h:1", "--timeout", "2.5"});
  ASSERT_OK(line);
  EXPECT_EQ(line->command, "list");
  EXPECT_EQ(line->output, OutputFormat::kJson);
  EXPECT_EQ(line->server, "h:1");
  EXPECT_EQ(line->timeout, absl::Milliseconds(2500));
}

TEST(ParseCommandLineTest, DefaultsWhenNoGlobalFlags) {
  absl::StatusOr<CommandLine> line = Parse({"workers"});
  ASSERT_OK(line);
  EXPECT_FALSE(line->server.has_value());
  EXPECT_FALSE(line->token.has_value());
  EXPECT_EQ(line->output, OutputFormat::kTable);
  EXPECT_EQ(line->timeout, absl::Seconds(30));
  EXPECT_FALSE(line->help);
}

TEST(ParseCommandLineTest, CommandFlagsAndPositionalInAnyOrder) {
  absl::StatusOr<CommandLine> line = Parse({"cancel", "--message", "wrong data", "17"});
  ASSERT_OK(line);
  EXPECT_THAT(line->positionals, ElementsAre("17"));
  EXPECT_EQ(line->flags.Last("message"), "wrong data");
}

TEST(ParseCommandLineTest, ValueThatLooksLikeAFlagIsTakenAsTheValue) {
  // A negative learning rate must reach the server (which names the field), not fail here.
  absl::StatusOr<CommandLine> line = Parse({"submit", "--lr", "-0.1", "--priority=-5"});
  ASSERT_OK(line);
  EXPECT_EQ(line->flags.Last("lr"), "-0.1");
  EXPECT_EQ(line->flags.Last("priority"), "-5");
}

TEST(ParseCommandLineTest, RepeatableFlagsKeepEveryValueOthersTheLast) {
  absl::StatusOr<CommandLine> line =
      Parse({"submit", "--label", "a=1", "--label=b=2", "--lr", "1", "--lr", "2"});
  ASSERT_OK(line);
  EXPECT_THAT(line->flags.All("label"), ElementsAre("a=1", "b=2"));
  EXPECT_EQ(line->flags.Last("lr"), "2");
  EXPECT_FALSE(line->flags.Has("name"));
  EXPECT_EQ(line->flags.Last("name"), "");
}

TEST(ParseCommandLineTest, SwitchesTakeNoValueUnlessInline) {
  absl::StatusOr<CommandLine> line = Parse({"submit", "--grad-checkpointing", "--wait=false"});
  ASSERT_OK(line);
  EXPECT_EQ(line->flags.Last("grad-checkpointing"), "true");
  EXPECT_EQ(line->flags.Last("wait"), "false");
  EXPECT_THAT(line->positionals, ::testing::IsEmpty());
}

TEST(ParseCommandLineTest, HelpAnywhereNeedsNothingElse) {
  absl::StatusOr<CommandLine> line = Parse({"--help"});
  ASSERT_OK(line);
  EXPECT_TRUE(line->help);
  line = Parse({"get", "--help"});  // no ID: fine with --help
  ASSERT_OK(line);
  EXPECT_TRUE(line->help);
  EXPECT_EQ(line->command, "get");
  line = Parse({"help", "submit"});
  ASSERT_OK(line);
  EXPECT_EQ(line->command, "help");
  EXPECT_THAT(line->positionals, ElementsAre("submit"));
}

struct BadArgsCase {
  std::string name;  // the last part of the test name
  std::vector<std::string> args;
  std::string message_part;
};

class BadArgsTest : public ::testing::TestWithParam<BadArgsCase> {};

TEST_P(BadArgsTest, IsAUsageErrorNamingTheProblem) {
  EXPECT_THAT(Parse(GetParam().args),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message_part)));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadArgsTest,
    ::testing::Values(
        BadArgsCase{"NoCommand", {}, "no command given"},
        BadArgsCase{"UnknownCommand", {"frobnicate"}, "unknown command 'frobnicate'"},
        BadArgsCase{"UnknownFlag", {"list", "--colour"}, "unknown flag --colour"},
        BadArgsCase{"CommandFlagBeforeCommand",
                    {"--lr", "1", "submit"},
                    "command flags go after the command"},
        BadArgsCase{"MissingJobId", {"get"}, "missing the job ID"},
        BadArgsCase{"TwoJobIds", {"get", "1", "2"}, "takes one job ID"},
        BadArgsCase{"UnexpectedArgument", {"list", "extra"}, "unexpected argument 'extra'"},
        BadArgsCase{
            "BadOutputFormat", {"list", "--output", "yaml"}, "--output: must be table or json"},
        BadArgsCase{"ZeroTimeout", {"list", "--timeout", "0"}, "--timeout"},
        BadArgsCase{"FlagWithoutValue", {"submit", "--model"}, "--model: needs a value"},
        BadArgsCase{"SwitchWithValue", {"submit", "--grad-checkpointing=maybe"}, "is a switch"},
        BadArgsCase{"ShortFlag", {"list", "-x"}, "unknown flag '-x'"},
        BadArgsCase{"HelpForUnknownCommand", {"help", "nope"}, "unknown command 'nope'"},
        BadArgsCase{"FlagOfAnotherCommand",
                    {"get", "--state", "queued", "1"},
                    "get: unknown flag --state"}),
    [](const ::testing::TestParamInfo<BadArgsCase>& info) { return info.param.name; });

TEST(ResolveTest, ServerFlagThenEnvironmentThenDefault) {
  CommandLine line;
  Environment env;
  EXPECT_EQ(ResolveServerAddress(line, env), "127.0.0.1:50051");
  env.server = "";
  EXPECT_EQ(ResolveServerAddress(line, env), "127.0.0.1:50051");
  env.server = "env-host:1";
  EXPECT_EQ(ResolveServerAddress(line, env), "env-host:1");
  line.server = "flag-host:2";
  EXPECT_EQ(ResolveServerAddress(line, env), "flag-host:2");
}

TEST(ResolveTest, TokenFlagThenEnvironmentThenNone) {
  CommandLine line;
  Environment env;
  EXPECT_EQ(ResolveToken(line, env), "");
  env.token = "from-env";
  EXPECT_EQ(ResolveToken(line, env), "from-env");
  line.token = "from-flag";
  EXPECT_EQ(ResolveToken(line, env), "from-flag");
}

TEST(ResolveTest, TlsCaFlagThenEnvironmentThenPlaintext) {
  CommandLine line;
  Environment env;
  EXPECT_EQ(ResolveTlsCaFile(line, env), "");
  env.tls_ca = "/env/ca.pem";
  EXPECT_EQ(ResolveTlsCaFile(line, env), "/env/ca.pem");
  absl::StatusOr<CommandLine> parsed = ParseCommandLine({"list", "--tls-ca", "/flag/ca.pem"});
  ASSERT_OK(parsed);
  EXPECT_EQ(ResolveTlsCaFile(*parsed, env), "/flag/ca.pem");
  EXPECT_THAT(ParseCommandLine({"--tls-ca=", "list"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-ca")));
}

TEST(HelpTextTest, MainHelpListsEveryCommandGlobalFlagAndExitCode) {
  const std::string help = MainHelp();
  for (const CommandSpec& command : CommandSpecs()) {
    EXPECT_THAT(help, HasSubstr(std::string("  ") + std::string(command.name))) << command.name;
  }
  for (const FlagSpec& flag : GlobalFlagSpecs()) {
    EXPECT_THAT(help, HasSubstr("--" + std::string(flag.name))) << flag.name;
  }
  EXPECT_THAT(help, HasSubstr("4  watch: the job ended CANCELLED"));
}

TEST(HelpTextTest, CommandHelpExplainsEveryFlagOfTheCommand) {
  for (const CommandSpec& command : CommandSpecs()) {
    const std::string help = CommandHelp(command);
    EXPECT_THAT(help, HasSubstr("Usage: tunectl [GLOBAL FLAGS] " + std::string(command.name)));
    for (const FlagSpec& flag : command.flags) {
      EXPECT_THAT(help, HasSubstr("--" + std::string(flag.name))) << command.name;
      EXPECT_FALSE(flag.help.empty()) << command.name << " --" << flag.name;
    }
  }
}

TEST(HelpTextTest, SubmitCoversTheContractFlags) {
  const CommandSpec* submit = FindCommand("submit");
  ASSERT_NE(submit, nullptr);
  for (const char* name : {"model",         "train",        "valid",
                           "name",          "budget-usd",   "lora-r",
                           "lora-alpha",    "lora-dropout", "target-modules",
                           "quantize-base", "epochs",       "max-steps",
                           "batch-size",    "lr",           "seq-len",
                           "seed",          "precision",    "grad-checkpointing",
                           "priority",      "spec"}) {
    EXPECT_NE(FindFlag(submit->flags, name), nullptr) << "--" << name;
  }
}

TEST(HelpTextTest, LinesFitOneHundredColumns) {
  std::vector<std::string> texts = {MainHelp()};
  for (const CommandSpec& command : CommandSpecs()) texts.push_back(CommandHelp(command));
  for (const std::string& text : texts) {
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      EXPECT_LE(end - start, 100u) << text.substr(start, end - start);
      start = end + 1;
    }
  }
}

}  // namespace
}  // namespace tuneledger::client
