#include "base/command_line.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace tuneledger {
namespace {

std::string Quote(const std::string& text) { return "'" + text + "'"; }

// strtoll and strtod skip leading blanks and take a '+': a flag value may not.
bool StartsLikeANumber(const std::string& text) {
  const char c = text.empty() ? '\0' : text[0];
  return (c >= '0' && c <= '9') || c == '-' || c == '.';
}

}  // namespace

std::string ParseCommandLine(const std::vector<std::string>& args,
                             const CommandLineHandlers& handlers) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const bool dashes = arg.rfind("--", 0) == 0 && arg.size() > 2;
    if (!dashes && arg != "-h") {
      if (arg.size() > 1 && arg[0] == '-') {
        return "unknown flag " + Quote(arg) + " (flags are spelled --name)";
      }
      if (!handlers.positional) return "unexpected argument " + Quote(arg) + " (see --help)";
      if (std::string problem = handlers.positional(arg); !problem.empty()) return problem;
      continue;
    }
    std::string name = arg == "-h" ? "help" : arg.substr(2);
    std::optional<std::string> value;
    if (const size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    const std::optional<FlagKind> kind = handlers.kind(name);
    if (!kind.has_value()) {
      return handlers.unknown_flag ? handlers.unknown_flag(name)
                                   : "unknown flag --" + name + " (see --help)";
    }
    if (*kind == FlagKind::kSwitch) {
      const std::string given = value.value_or("true");
      if (given == "true" || given == "1") {
        value = "true";
      } else if (given == "false" || given == "0") {
        value = "false";
      } else {
        return "--" + name + ": is a switch: give it alone or as --" + name + "=true|false";
      }
    } else if (!value.has_value()) {
      if (i + 1 >= args.size()) return "--" + name + ": needs a value";
      value = args[++i];
    }
    if (std::string problem = handlers.apply(name, *value); !problem.empty()) {
      return "--" + name + ": " + problem;
    }
  }
  return "";
}

std::vector<std::string> CommandLineArguments(int argc, char** argv) {
  return std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc);
}

std::optional<int64_t> ParseIntFlag(const std::string& text, int64_t min, int64_t max) {
  if (!StartsLikeANumber(text)) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size() || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

std::optional<double> ParseDoubleFlag(const std::string& text, double min, double max) {
  if (!StartsLikeANumber(text)) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value) || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

}  // namespace tuneledger
