#include "base/command_line.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A program with --name VALUE, --count N (a positive integer), --spot and --help, and a record
// of what the parser handed it.
struct Program {
  std::map<std::string, std::string> flags;
  std::vector<std::string> positionals;
  bool takes_positionals = false;

  std::string Parse(const std::vector<std::string>& args) {
    CommandLineHandlers handlers;
    handlers.kind = [](std::string_view name) -> std::optional<FlagKind> {
      if (name == "name" || name == "count") return FlagKind::kValue;
      if (name == "spot" || name == "help") return FlagKind::kSwitch;
      return std::nullopt;
    };
    handlers.apply = [this](std::string_view name, const std::string& value) -> std::string {
      if (name == "count" && !ParseIntFlag(value, 1, 100)) {
        return "must be an integer in [1, 100], got '" + value + "'";
      }
      flags[std::string(name)] = value;
      return "";
    };
    if (takes_positionals) {
      handlers.positional = [this](const std::string& arg) {
        positionals.push_back(arg);
        return std::string();
      };
    }
    return ParseCommandLine(args, handlers);
  }
};

TEST(CommandLineTest, ValuesSwitchesAndHelpInEverySpelling) {
  Program program;
  EXPECT_EQ(program.Parse({"--name", "a b", "--count=7", "--spot", "-h"}), "");
  EXPECT_EQ(program.flags,
            (std::map<std::string, std::string>{
                {"name", "a b"}, {"count", "7"}, {"spot", "true"}, {"help", "true"}}));
  Program explicit_false;
  EXPECT_EQ(explicit_false.Parse({"--spot=false", "--help=0", "--name="}), "");
  EXPECT_EQ(explicit_false.flags["spot"], "false");
  EXPECT_EQ(explicit_false.flags["help"], "false");
  EXPECT_EQ(explicit_false.flags["name"], "");
}

TEST(CommandLineTest, EveryProblemIsOneLineNamingTheFlag) {
  EXPECT_EQ(Program().Parse({"--frobnicate", "1"}), "unknown flag --frobnicate (see --help)");
  EXPECT_EQ(Program().Parse({"--name"}), "--name: needs a value");
  EXPECT_EQ(Program().Parse({"--count", "0"}), "--count: must be an integer in [1, 100], got '0'");
  EXPECT_EQ(Program().Parse({"--spot=maybe"}),
            "--spot: is a switch: give it alone or as --spot=true|false");
  EXPECT_EQ(Program().Parse({"-x"}), "unknown flag '-x' (flags are spelled --name)");
  EXPECT_EQ(Program().Parse({"extra"}), "unexpected argument 'extra' (see --help)");
}

TEST(CommandLineTest, PositionalsGoToTheProgramInOrder) {
  Program program;
  program.takes_positionals = true;
  EXPECT_EQ(program.Parse({"get", "--name", "x", "17", "-"}), "");
  EXPECT_THAT(program.positionals, ElementsAre("get", "17", "-"));
  EXPECT_EQ(program.flags["name"], "x");
}

TEST(CommandLineTest, ArgumentsSkipTheProgramName) {
  char program[] = "prog";
  char first[] = "--a";
  char* argv[] = {program, first, nullptr};
  EXPECT_THAT(CommandLineArguments(2, argv), ElementsAre("--a"));
  EXPECT_THAT(CommandLineArguments(1, argv), IsEmpty());
}

TEST(CommandLineTest, NumbersMustBeWholeAndInRange) {
  EXPECT_EQ(ParseIntFlag("42", 0, 100), 42);
  EXPECT_EQ(ParseIntFlag("-3", -5, 5), -3);
  for (const char* bad : {"", " 4", "+4", "4x", "4.0", "101", "99999999999999999999"}) {
    EXPECT_FALSE(ParseIntFlag(bad, 0, 100).has_value()) << "'" << bad << "'";
  }
  EXPECT_EQ(ParseDoubleFlag("2.5", 0, 10), 2.5);
  EXPECT_EQ(ParseDoubleFlag(".5", 0, 10), 0.5);
  for (const char* bad : {"", "nan", "inf", "1e400", " 1", "2.5s", "-1", "11"}) {
    EXPECT_FALSE(ParseDoubleFlag(bad, 0, 10).has_value()) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace tuneledger
