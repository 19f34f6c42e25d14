// HfChatTemplate against transformers: reference/chat_template_reference.py renders every prefix
// of a set of conversations (system/user/assistant mixes, multi-turn, unicode, empty content,
// whitespace at the edges, a tool call, role-order mistakes) with add_generation_prompt false
// and true through AutoTokenizer.apply_chat_template, for the templates in chat_templates/
// (SmolLM2's own; Llama 3.x, Qwen2.5, Mistral and Phi-3 style ones written for this test; one
// covering the interpreter's constructs) and, when the real model folder exists, SmolLM2's
// tokenizer_config.json itself. Every text must be byte-identical; where transformers raises
// (raise_exception) we must raise a TrainError carrying its message. A template with a construct
// outside the subset must be refused by name and line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "lm/text/hf_chat_template.h"
#include "lm/trainer_error.h"
#include "tests/trainer/python_reference_dir.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;
using ::testing::HasSubstr;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The real SmolLM2 folder (deploy/install-deps.sh makes it; absent in a bare checkout), or
// $TUNELEDGER_SMOLLM2_DIR.
std::string SmolLM2Dir() {
  if (const char* dir = std::getenv("TUNELEDGER_SMOLLM2_DIR")) return dir;
  return std::string(TUNELEDGER_SOURCE_DIR) + "/models/smollm2-135m-instruct";
}

// chat_template_reference.py's output (~6 s; each test runs in its own process under ctest),
// made on first use and removed by ChatTemplateParityTest::TearDownTestSuite;
// $TUNELEDGER_CHAT_TEMPLATE_REFERENCE_DIR reuses a filled folder (never removed).
PythonReferenceDir* reference_dir = nullptr;

const PythonReferenceDir& Reference() {
  if (reference_dir == nullptr) {
    reference_dir =
        new PythonReferenceDir("chat_template_reference.py", "--smollm2-dir " + SmolLM2Dir(),
                               "TUNELEDGER_CHAT_TEMPLATE_REFERENCE_DIR", "chat_template_parity");
  }
  return *reference_dir;
}

std::vector<ordered_json> Conversations() {
  const ordered_json all =
      ordered_json::parse(ReadText(Reference().path() + "/conversations.json"));
  return std::vector<ordered_json>(all.begin(), all.end());
}

// What both strings print as (JSON-escaped) and the first byte where they differ.
std::string Mismatch(const std::string& want, const std::string& got) {
  size_t at = 0;
  while (at < want.size() && at < got.size() && want[at] == got[at]) ++at;
  return "  transformers: " + json(want).dump() + "\n  tuneledger:   " + json(got).dump() +
         "\n  first difference at byte " + std::to_string(at) + " (transformers " +
         std::to_string(want.size()) + " bytes, tuneledger " + std::to_string(got.size()) + ")";
}

// Renders every case of `name` and compares; returns how many texts matched.
int ExpectParity(const std::string& name) {
  const std::string folder = Reference().path() + "/" + name;
  const std::unique_ptr<HfChatTemplate> chat_template = HfChatTemplate::FromModelDir(folder);
  EXPECT_NE(chat_template, nullptr) << folder << " has no chat template";
  if (!chat_template) return 0;
  const std::vector<ordered_json> conversations = Conversations();
  std::ifstream expected_file(folder + "/expected.jsonl");
  std::string line;
  int matched = 0;
  int failures = 0;
  while (std::getline(expected_file, line)) {
    const json expected = json::parse(line);
    const size_t index = expected["conversation"].get<size_t>();
    const bool add_generation_prompt = expected["add_generation_prompt"].get<bool>();
    const ordered_json& messages = conversations.at(index);
    const std::string where =
        name + ": conversation " + std::to_string(index) + " " + messages.dump() +
        ", add_generation_prompt=" + (add_generation_prompt ? "true" : "false");
    if (expected.contains("error")) {
      try {
        const std::string got =
            chat_template->Render(jinja::FromJson(messages), add_generation_prompt);
        ADD_FAILURE() << where << "\n  transformers raised " << expected["error_type"] << ": "
                      << expected["error"] << "\n  tuneledger rendered " << json(got).dump();
      } catch (const TrainError& e) {
        if (expected["error_type"] == "TemplateError") {
          EXPECT_THAT(e.what(), HasSubstr(expected["error"].get<std::string>())) << where;
        }
      }
      continue;
    }
    const std::string want = expected["text"].get<std::string>();
    std::string got;
    try {
      got = chat_template->Render(jinja::FromJson(messages), add_generation_prompt);
    } catch (const TrainError& e) {
      ADD_FAILURE() << where << "\n  tuneledger raised: " << e.what()
                    << "\n  transformers: " << json(want).dump();
      continue;
    }
    if (got == want) {
      ++matched;
    } else if (++failures <= 5) {
      ADD_FAILURE() << where << "\n" << Mismatch(want, got);
    }
  }
  EXPECT_EQ(failures, 0) << name << ": " << failures << " texts differ";
  return matched;
}

// Each assistant turn SplitTurns finds holds that message's content, in order, after the text
// before it; every conversation transformers renders must split.
void ExpectSplits(const std::string& name) {
  const auto chat_template = HfChatTemplate::FromModelDir(Reference().path() + "/" + name);
  ASSERT_NE(chat_template, nullptr);
  int split = 0;
  for (const ordered_json& messages : Conversations()) {
    const jinja::Value value = jinja::FromJson(messages);
    try {
      chat_template->Render(value, false);
    } catch (const TrainError&) {
      continue;  // role-order mistakes the template refuses
    }
    HfChatTemplate::Turns turns;
    try {
      turns = chat_template->SplitTurns(value);
    } catch (const TrainError& e) {
      ADD_FAILURE() << name << ": " << messages.dump() << ": " << e.what();
      continue;
    }
    size_t assistant = 0;
    for (const auto& message : messages) {
      if (message["role"] != "assistant") continue;
      ASSERT_LT(assistant, turns.assistant_spans.size()) << messages.dump();
      const auto [begin, end] = turns.assistant_spans[assistant++];
      ASSERT_LE(begin, end);
      ASSERT_LE(end, turns.text.size());
      const std::string span = turns.text.substr(begin, end - begin);
      std::string content = message["content"].get<std::string>();
      content.erase(content.find_last_not_of(" \t\n\r") + 1);  // the turn drops end whitespace
      if (name == "llama3") content.erase(0, content.find_first_not_of(" \t\n\r"));  // | trim
      EXPECT_THAT(span, HasSubstr(content)) << name << ": " << messages.dump();
    }
    EXPECT_EQ(assistant, turns.assistant_spans.size()) << messages.dump();
    ++split;
  }
  EXPECT_GT(split, 10) << name;
}

class ChatTemplateParityTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    delete reference_dir;  // removes the temp folder it made
    reference_dir = nullptr;
  }
  void SetUp() override {
    ASSERT_FALSE(Reference().path().empty()) << "cannot make a temp folder";
    ASSERT_EQ(Reference().error(), "");
  }
};

TEST_F(ChatTemplateParityTest, SmolLM2) {
  EXPECT_GT(ExpectParity("smollm2"), 80);
  ExpectSplits("smollm2");
}

TEST_F(ChatTemplateParityTest, SmolLM2ModelFolder) {
  const std::string config_path = SmolLM2Dir() + "/tokenizer_config.json";
  if (!fs::exists(config_path)) GTEST_SKIP() << config_path << " absent (deploy/install-deps.sh)";
  // The fixture must stay the model's template, so that the tests without the model test it.
  const json config = json::parse(ReadText(config_path));
  EXPECT_EQ(
      ReadText(std::string(TUNELEDGER_SOURCE_DIR) + "/tests/trainer/chat_templates/smollm2.jinja"),
      config["chat_template"].get<std::string>());
  EXPECT_GT(ExpectParity("smollm2_model"), 80);
  ExpectSplits("smollm2_model");
}

TEST_F(ChatTemplateParityTest, Llama3Style) {
  EXPECT_GT(ExpectParity("llama3"), 80);
  ExpectSplits("llama3");
}

TEST_F(ChatTemplateParityTest, Qwen25Style) {
  EXPECT_GT(ExpectParity("qwen2_5"), 80);
  ExpectSplits("qwen2_5");
}

TEST_F(ChatTemplateParityTest, MistralStyle) {
  EXPECT_GT(ExpectParity("mistral"), 60);
  ExpectSplits("mistral");
}

TEST_F(ChatTemplateParityTest, Phi3Style) {
  EXPECT_GT(ExpectParity("phi3"), 80);
  ExpectSplits("phi3");
}

TEST_F(ChatTemplateParityTest, InterpreterFeatures) { EXPECT_GT(ExpectParity("features"), 80); }

// jinja2 renders this template ({% filter %}); tuneledger must refuse it when loading, naming
// the file, the construct and the line.
TEST_F(ChatTemplateParityTest, UnsupportedConstructIsRefusedByName) {
  const std::string folder = Reference().path() + "/unsupported";
  std::ifstream expected(folder + "/expected.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(expected, line));
  ASSERT_TRUE(json::parse(line).contains("text")) << "jinja2 should render it: " << line;
  try {
    HfChatTemplate::FromModelDir(folder);
    FAIL() << "an unsupported construct was accepted";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr(folder + "/tokenizer_config.json: chat_template: "
                                             "unsupported Jinja construct 'filter' at line 5"));
  }
}

}  // namespace
}  // namespace tuneledger::train
