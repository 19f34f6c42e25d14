#include "tests/trainer/recipe_test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "lm/data/byte_tokenizer.h"
#include "lm/model_config.h"
#include "tests/testing/temp_dir.h"
#include "worker/trainer/model/model_loader.h"
#include "worker/trainer/model/safetensors_reader.h"

extern char** environ;

namespace tuneledger::train::testing {

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

void WriteSmolLM2StyleTokenizer(const std::string& dir, const nlohmann::json& config) {
  // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for
  // U+0100 onwards, in byte order.
  nlohmann::json vocab = nlohmann::json::object();
  int shifted = 0;
  for (int byte = 0; byte < 256; ++byte) {
    const bool printable =
        (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255);
    const uint32_t cp = printable ? static_cast<uint32_t>(byte) : 256u + shifted++;
    std::string symbol;
    if (cp < 0x80) {
      symbol += static_cast<char>(cp);
    } else {
      symbol += static_cast<char>(0xc0 | (cp >> 6));
      symbol += static_cast<char>(0x80 | (cp & 0x3f));
    }
    vocab[symbol] = ByteTokenizer::kByteOffset + byte;
  }
  nlohmann::json added = nlohmann::json::array();
  const char* specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  for (int id = 0; id < 3; ++id) {
    added.push_back({{"id", id},
                     {"content", specials[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const nlohmann::json byte_level = {{"type", "ByteLevel"},
                                     {"add_prefix_space", false},
                                     {"trim_offsets", true},
                                     {"use_regex", true}};
  const nlohmann::json tokenizer = {{"version", "1.0"},
                                    {"added_tokens", added},
                                    {"normalizer", nullptr},
                                    {"pre_tokenizer", byte_level},
                                    {"post_processor", nullptr},
                                    {"decoder", byte_level},
                                    {"model",
                                     {{"type", "BPE"},
                                      {"vocab", vocab},
                                      {"merges", nlohmann::json::array()},
                                      {"unk_token", nullptr},
                                      {"fuse_unk", false},
                                      {"byte_fallback", false}}}};
  WriteTextFile(dir + "/tokenizer.json", tokenizer.dump());
  nlohmann::json tokenizer_config = {
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"add_bos_token", false},
      {"add_eos_token", false},
      {"bos_token", "<|im_start|>"},
      {"eos_token", "<|im_end|>"},
      {"unk_token", "<|endoftext|>"},
      {"pad_token", "<|im_end|>"},
      {"chat_template", ReadTextFile(std::string(TUNELEDGER_SOURCE_DIR) +
                                     "/tests/trainer/chat_templates/smollm2.jinja")}};
  for (auto it = config.begin(); it != config.end(); ++it) tokenizer_config[it.key()] = it.value();
  WriteTextFile(dir + "/tokenizer_config.json", tokenizer_config.dump(2));
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
  const ::tuneledger::testing::TempDir scratch("tl_recipe_run");  // the child's stderr file
  const std::string stderr_path = scratch.File("stderr.txt");
  const int stderr_fd =
      ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, S_IRUSR | S_IWUSR);
  if (stderr_fd < 0) {
    ADD_FAILURE() << "cannot create " << stderr_path << ": " << std::strerror(errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return run;
  }
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
  return run;
}

std::string TrainerBinary() { return std::string(TUNELEDGER_BIN_DIR) + "/tuneledger-train"; }

TrainerRun RunTrainer(const std::string& spec, const std::string& out,
                      const std::vector<std::string>& extra,
                      const std::function<bool(const nlohmann::json&)>& on_line) {
  std::vector<std::string> args = {"--spec", spec, "--out", out, "--threads", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunProcess(TrainerBinary(), args, on_line);
}

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
