// The main() of a fuzz target in the ordinary build (gcc, no libFuzzer): runs
// LLVMFuzzerTestOneInput once on each file named, and on every file under each folder named
// (recursively, in sorted order), the way a libFuzzer binary runs `-runs=0 DIR...`. Arguments
// that start with '-' (libFuzzer flags) are ignored, so that one ctest command line serves both
// builds (tests/fuzz/CMakeLists.txt). Exits 1 when it found no input at all, so that a corpus
// folder that moved is not a silent pass.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<std::string> Inputs(int argc, char** argv) {
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.empty() || arg[0] == '-') continue;
    if (fs::is_directory(arg)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::recursive_directory_iterator(arg)) {
        if (entry.is_regular_file()) found.push_back(entry.path().string());
      }
      std::sort(found.begin(), found.end());
      inputs.insert(inputs.end(), found.begin(), found.end());
    } else {
      inputs.push_back(arg);
    }
  }
  return inputs;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> inputs = Inputs(argc, argv);
  if (inputs.empty()) {
    std::cerr << "replay: no input files found in the arguments\n";
    return 1;
  }
  for (const std::string& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::cerr << "replay: cannot read " << path << "\n";
      return 1;
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::cerr << "replay: " << path << " (" << bytes.size() << " bytes)\n";
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::cerr << "replay: " << inputs.size() << " inputs, no crash\n";
  return 0;
}
