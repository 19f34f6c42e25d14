// The trainer's executables bind the C++ standard library to libstdc++, never to a copy that
// another library exports. pip's libtorch_cpu.so exports its own std::filesystem (seen:
// remove_all jumping to address 0 when a checkpoint prune called it through that copy);
// worker/trainer/libtorch.cmake makes libstdc++ the first library the dynamic linker searches.
// The check asks the dynamic linker itself: LD_BIND_NOW=1 resolves every symbol at start-up and
// LD_DEBUG=bindings prints where each one went.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/trainer/recipe_test_util.h"

namespace tuneledger::train {
namespace {

using testing::RunProcess;
using testing::ScopedEnv;

struct Binding {
  std::string symbol;
  std::string library;
};

// The standard-library symbols `binary` itself imports, with the library each was bound to.
std::vector<Binding> StdBindingsOf(const std::string& binary) {
  ScopedEnv debug("LD_DEBUG", "bindings");
  ScopedEnv now("LD_BIND_NOW", "1");
  const testing::TrainerRun run =
      RunProcess(binary, {"--help"}, nullptr, 120, /*stdout_is_json=*/false);
  EXPECT_EQ(run.exit_code, 0) << binary;
  // "  123:\tbinding file <file> [0] to <library> [0]: normal symbol `<symbol>' [GLIBCXX_3.4]"
  static const std::regex kLine(
      R"(binding file (\S+) \[\d+\] to (\S+) \[\d+\]: \w+ symbol `([^']+)')");
  // Itanium mangling of names in namespace std: _ZSt, _ZNSt, _ZNKSt, and the typeinfo / vtable /
  // typeinfo-name of std classes (_ZTISt, _ZTVNSt, ...).
  static const std::regex kStdSymbol("^_Z(T[ISV])?(N|NK)?St.*");
  std::vector<Binding> bindings;
  std::istringstream lines(run.stderr_text);
  for (std::string line; std::getline(lines, line);) {
    std::smatch match;
    if (!std::regex_search(line, match, kLine) || match[1].str() != binary) continue;
    if (!std::regex_match(match[3].str(), kStdSymbol)) continue;
    bindings.push_back({match[3].str(), match[2].str()});
  }
  return bindings;
}

TEST(SymbolBindingTest, StandardLibrarySymbolsBindToLibstdcxx) {
  for (const std::string name : {"tuneledger-train", "tuneledger-pretrain"}) {
    SCOPED_TRACE(name);
    const std::string binary = std::string(TUNELEDGER_BIN_DIR) + "/" + name;
    const std::vector<Binding> bindings = StdBindingsOf(binary);
    // A trainer imports hundreds of std symbols (std::filesystem among them); too few means the
    // dynamic linker's output was not understood, and the check below would prove nothing.
    ASSERT_GE(bindings.size(), 20u) << "LD_DEBUG=bindings output not understood";
    std::map<std::string, int> elsewhere;
    for (const Binding& binding : bindings) {
      const bool libstdcxx = binding.library.find("/libstdc++.so") != std::string::npos;
      if (!libstdcxx && binding.library != binary) {
        ++elsewhere[binding.library];
        ADD_FAILURE() << binding.symbol << " bound to " << binding.library;
      }
    }
    EXPECT_TRUE(elsewhere.empty()) << elsewhere.size() << " libraries other than libstdc++ "
                                   << "provide std symbols to " << name;
  }
}

}  // namespace
}  // namespace tuneledger::train
