// Helpers for the recipe tests: temp dirs, files, a tiny random model folder, and running
// tuneledger-train as a child process while reading its progress lines.
#ifndef TUNELEDGER_TESTS_TRAINER_RECIPE_TEST_UTIL_H_
#define TUNELEDGER_TESTS_TRAINER_RECIPE_TEST_UTIL_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tuneledger::train::testing {

// A fresh directory under $TMPDIR, removed with its content on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteTextFile(const std::string& path, const std::string& content);
std::string ReadTextFile(const std::string& path);

// A random tiny Llama (byte tokenizer, GQA, 2 layers, hidden 64) saved as a model folder.
void MakeTinyModel(const std::string& dir, uint64_t seed = 7);

// `count` {"prompt","completion"} lines of a small copy task, deterministic.
std::string TinyPromptCompletionData(int count, int offset = 0);

struct TrainerRun {
  int exit_code = -1;                 // 128 + signal when killed by a signal
  std::vector<nlohmann::json> lines;  // parsed stdout lines
  std::string stdout_text;
  std::string stderr_text;
  // The lines whose "type" is `type`.
  std::vector<nlohmann::json> OfType(const std::string& type) const;
};

// Runs `binary` with `args` (stderr to a temp file) and waits, with a deadline. When
// `on_line` returns true for a stdout line, the child gets SIGTERM (once). Every stdout line
// must be JSON unless `stdout_is_json` is false (e.g. --help).
TrainerRun RunProcess(const std::string& binary, const std::vector<std::string>& args,
                      const std::function<bool(const nlohmann::json&)>& on_line = nullptr,
                      int timeout_seconds = 300, bool stdout_is_json = true);

std::string TrainerBinary();  // <bin>/tuneledger-train

// Max |a - b| over every tensor of two adapter_model.safetensors files; fails the test (and
// returns +inf) when the names or shapes differ.
double MaxAdapterDiff(const std::string& adapter_dir_a, const std::string& adapter_dir_b);

}  // namespace tuneledger::train::testing

#endif  // TUNELEDGER_TESTS_TRAINER_RECIPE_TEST_UTIL_H_
