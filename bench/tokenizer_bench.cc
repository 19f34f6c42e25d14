// tokenizer_bench: HfTokenizer's encode speed on one core, in MB of UTF-8 text per second, on
// the corpus and tokenizers that tests/trainer/reference/tokenizer_reference.py generates (the
// parity test's: 12,000 lines of mixed scripts, emoji, whitespace runs, numbers and code).
//
//   BM_Encode/<tokenizer>       encode every line, BPE word cache warm (steady state of a long
//                               dataset load)
//   BM_EncodeCold/<tokenizer>   the same with a freshly loaded tokenizer each pass (empty cache:
//                               every word goes through the merge loop)
//   BM_SplitOnly/llama3         baseline: the Llama 3 split regex alone over the corpus (UTF-8
//                               decoding, category lookups and matching, no BPE)
// The corpus is generated at start-up with $TUNELEDGER_PYTHON (tens of seconds) into a temp
// folder, or read from $TUNELEDGER_TOKENIZER_REFERENCE_DIR when set.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lm/text/hf_tokenizer.h"
#include "lm/text/unicode_regex.h"

namespace tuneledger::bench {
namespace {

namespace fs = std::filesystem;
using train::HfTokenizer;

struct Reference {
  std::string dir;
  bool owned = false;
  std::vector<std::string> lines;
  int64_t bytes = 0;
  ~Reference() {
    if (owned) fs::remove_all(dir);
  }
};

Reference* g_reference = nullptr;

bool MakeReference() {
  static Reference reference;
  if (const char* reuse = std::getenv("TUNELEDGER_TOKENIZER_REFERENCE_DIR")) {
    reference.dir = reuse;
  } else {
    char pattern[] = "/tmp/tuneledger_tokenizer_bench_XXXXXX";
    if (::mkdtemp(pattern) == nullptr) return false;
    reference.dir = pattern;
    reference.owned = true;
    const std::string command = std::string(TUNELEDGER_PYTHON) + " " + TUNELEDGER_SOURCE_DIR +
                                "/tests/trainer/reference/tokenizer_reference.py --out " +
                                reference.dir + " --only llama3,qwen2,gpt2,llama2,mistral";
    if (std::system(command.c_str()) != 0) {
      std::cerr << "tokenizer_reference.py failed: " << command << "\n";
      return false;
    }
  }
  std::ifstream in(reference.dir + "/corpus.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    reference.lines.push_back(nlohmann::json::parse(line).get<std::string>());
    reference.bytes += static_cast<int64_t>(reference.lines.back().size());
  }
  g_reference = &reference;
  return !reference.lines.empty();
}

int64_t EncodeAll(const HfTokenizer& tokenizer) {
  int64_t tokens = 0;
  for (const std::string& line : g_reference->lines) {
    tokens += static_cast<int64_t>(tokenizer.Encode(line).size());
  }
  return tokens;
}

void BM_Encode(benchmark::State& state, const std::string& name) {
  const auto tokenizer = HfTokenizer::FromModelDir(g_reference->dir + "/" + name);
  EncodeAll(*tokenizer);  // warm the cache
  int64_t tokens = 0;
  for (auto _ : state) benchmark::DoNotOptimize(tokens = EncodeAll(*tokenizer));
  state.SetBytesProcessed(state.iterations() * g_reference->bytes);
  state.counters["tokens_per_line"] =
      static_cast<double>(tokens) / static_cast<double>(g_reference->lines.size());
}

void BM_EncodeCold(benchmark::State& state, const std::string& name) {
  for (auto _ : state) {
    state.PauseTiming();
    auto tokenizer = HfTokenizer::FromModelDir(g_reference->dir + "/" + name);
    state.ResumeTiming();
    benchmark::DoNotOptimize(EncodeAll(*tokenizer));
    state.PauseTiming();
    tokenizer.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(state.iterations() * g_reference->bytes);
}

void BM_SplitOnly(benchmark::State& state) {
  const train::UnicodeRegex regex = train::UnicodeRegex::Compile(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      "llama3");
  for (auto _ : state) {
    size_t pieces = 0;
    for (const std::string& line : g_reference->lines) {
      pieces += regex.FindAll(train::RegexInput(line)).size();
    }
    benchmark::DoNotOptimize(pieces);
  }
  state.SetBytesProcessed(state.iterations() * g_reference->bytes);
}

}  // namespace
}  // namespace tuneledger::bench

int main(int argc, char** argv) {
  using namespace tuneledger::bench;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (!MakeReference()) {
    // The test's FAIL_REGULAR_EXPRESSION catches this line.
    std::cerr << "ERROR OCCURRED: no corpus\n";
    return 1;
  }
  for (const char* name : {"llama3", "qwen2", "gpt2", "llama2", "mistral"}) {
    benchmark::RegisterBenchmark((std::string("BM_Encode/") + name).c_str(), BM_Encode, name)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("BM_EncodeCold/") + name).c_str(), BM_EncodeCold,
                                 name)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("BM_SplitOnly/llama3", BM_SplitOnly)->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
