#include "tests/trainer/recipe_test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "worker/trainer/byte_tokenizer.h"
#include "worker/trainer/model_config.h"
#include "worker/trainer/model_loader.h"
#include "worker/trainer/safetensors_reader.h"

extern char** environ;

namespace tuneledger::train::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/tl_recipe_XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void WriteTextFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void MakeTinyModel(const std::string& dir, uint64_t seed) {
  LlamaConfig config =
      LlamaConfig::FromJson(nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                                           {"model_type", "llama"},
                                           {"vocab_size", ByteTokenizer::kVocabSize},
                                           {"hidden_size", 64},
                                           {"intermediate_size", 128},
                                           {"num_hidden_layers", 2},
                                           {"num_attention_heads", 4},
                                           {"num_key_value_heads", 2},
                                           {"rms_norm_eps", 1e-5},
                                           {"max_position_embeddings", 256},
                                           {"tie_word_embeddings", true},
                                           {"bos_token_id", ByteTokenizer::kBosId},
                                           {"eos_token_id", ByteTokenizer::kEosId},
                                           {"pad_token_id", ByteTokenizer::kPadId}});
  LlamaForCausalLM model = CreateRandom(config, ModelOptions{}, seed);
  SaveFullModel(model, dir, torch::kFloat32);
  WriteTextFile(dir + "/" + ByteTokenizer::kConfigFileName, ByteTokenizer::ConfigJson());
}

std::string TinyPromptCompletionData(int count, int offset) {
  static const char* kWords[] = {"cat", "dog", "sun", "map", "cup", "hat", "pen", "box"};
  std::string data;
  for (int i = offset; i < offset + count; ++i) {
    const std::string a = kWords[i % 8];
    const std::string b = kWords[(i / 8) % 8];
    data +=
        nlohmann::json{{"prompt", "copy " + a + " " + b + ":"}, {"completion", " " + b + " " + a}}
            .dump() +
        "\n";
  }
  return data;
}

std::vector<nlohmann::json> TrainerRun::OfType(const std::string& type) const {
  std::vector<nlohmann::json> found;
  for (const auto& line : lines) {
    if (line.value("type", "") == type) found.push_back(line);
  }
  return found;
}

TrainerRun RunProcess(const std::string& binary, const std::vector<std::string>& args,
                      const std::function<bool(const nlohmann::json&)>& on_line,
                      int timeout_seconds, bool stdout_is_json) {
  TrainerRun run;
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe failed";
    return run;
  }
  char stderr_path[] = "/tmp/tl_recipe_stderr_XXXXXX";
  const int stderr_fd = ::mkstemp(stderr_path);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  std::vector<std::string> argv_storage = {binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int spawn_error =
      ::posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  if (spawn_error != 0) {
    ADD_FAILURE() << "cannot start " << binary << ": " << std::strerror(spawn_error);
    ::close(out_pipe[0]);
    ::close(stderr_fd);
    return run;
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  bool signalled = false;
  std::string pending;
  char buffer[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      ADD_FAILURE() << binary << " did not finish within " << timeout_seconds << " s";
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd poll_fd{out_pipe[0], POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(std::min<int64_t>(left, 1000))) <= 0) continue;
    const ssize_t n = ::read(out_pipe[0], buffer, sizeof(buffer));
    if (n <= 0) break;  // EOF: the child closed stdout (exited)
    run.stdout_text.append(buffer, n);
    pending.append(buffer, n);
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      const std::string text = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (line.is_discarded()) {
        if (stdout_is_json) ADD_FAILURE() << "stdout line is not JSON: " << text;
        continue;
      }
      run.lines.push_back(line);
      if (!signalled && on_line && on_line(line)) {
        ::kill(pid, SIGTERM);
        signalled = true;
      }
    }
  }
  ::close(out_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  ::close(stderr_fd);
  run.stderr_text = ReadTextFile(stderr_path);
  ::unlink(stderr_path);
  return run;
}

std::string TrainerBinary() { return std::string(TUNELEDGER_BIN_DIR) + "/tuneledger-train"; }

double MaxAdapterDiff(const std::string& adapter_dir_a, const std::string& adapter_dir_b) {
  const auto a = SafetensorsFile::Open(adapter_dir_a + "/adapter_model.safetensors");
  const auto b = SafetensorsFile::Open(adapter_dir_b + "/adapter_model.safetensors");
  if (a.names() != b.names()) {
    ADD_FAILURE() << "adapters hold different tensors";
    return std::numeric_limits<double>::infinity();
  }
  double max_diff = 0;
  for (const auto& name : a.names()) {
    const torch::Tensor x = a.Tensor(name).to(torch::kFloat64);
    const torch::Tensor y = b.Tensor(name).to(torch::kFloat64);
    if (x.sizes() != y.sizes()) {
      ADD_FAILURE() << name << ": shapes differ";
      return std::numeric_limits<double>::infinity();
    }
    max_diff = std::max(max_diff, (x - y).abs().max().item<double>());
  }
  return max_diff;
}

}  // namespace tuneledger::train::testing
