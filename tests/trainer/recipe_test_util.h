// Helpers for the recipe tests: files, a tiny random model folder, and running tuneledger-train
// as a child process while reading its progress lines. Temp dirs: tests/testing/temp_dir.h.
#ifndef TUNELEDGER_TESTS_TRAINER_RECIPE_TEST_UTIL_H_
#define TUNELEDGER_TESTS_TRAINER_RECIPE_TEST_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tuneledger::train::testing {

void WriteTextFile(const std::string& path, const std::string& content);
std::string ReadTextFile(const std::string& path);

// A random tiny Llama (byte tokenizer, GQA, 2 layers, hidden 64) saved as a model folder.
void MakeTinyModel(const std::string& dir, uint64_t seed = 7);

// A Hugging Face tokenizer.json + tokenizer_config.json in `dir` laid out like the byte
// tokenizer (ids 3 + byte, so a MakeTinyModel folder can use it) but with SmolLM2's special
// tokens as added tokens: <|endoftext|> 0 (unk), <|im_start|> 1 (bos), <|im_end|> 2 (eos, pad),
// and SmolLM2's own chat template (tests/trainer/chat_templates/smollm2.jinja). `config` entries
// replace those of tokenizer_config.json (e.g. another "chat_template").
void WriteSmolLM2StyleTokenizer(const std::string& dir,
                                const nlohmann::json& config = nlohmann::json::object());

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

// tuneledger-train --spec SPEC --out OUT --threads 2 EXTRA..., as RunProcess runs it: the process
// tests' one way to start the trainer.
TrainerRun RunTrainer(const std::string& spec, const std::string& out,
                      const std::vector<std::string>& extra = {},
                      const std::function<bool(const nlohmann::json&)>& on_line = nullptr);

// Sets an environment variable for the children this test starts; restores it on scope exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, /*overwrite=*/1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Max |a - b| over every tensor of two adapter_model.safetensors files; fails the test (and
// returns +inf) when the names or shapes differ.
double MaxAdapterDiff(const std::string& adapter_dir_a, const std::string& adapter_dir_b);

}  // namespace tuneledger::train::testing

#endif  // TUNELEDGER_TESTS_TRAINER_RECIPE_TEST_UTIL_H_
