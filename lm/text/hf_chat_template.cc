#include "lm/text/hf_chat_template.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lm/json_parse.h"
#include "lm/text/unicode.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

using jinja::Value;
using nlohmann::json;

// transformers' SPECIAL_TOKENS_ATTRIBUTES, the named tokens every tokenizer passes.
constexpr const char* kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TrainError(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// "text", {"content": "text"}, or null (absent).
std::optional<std::string> TokenText(const json& value, const std::string& where) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  throw TrainError(where + ": must be a string, {\"content\": ...} or null");
}

std::vector<std::pair<std::string, std::string>> ReadSpecialTokens(const json& config,
                                                                   const std::string& path) {
  std::vector<std::pair<std::string, std::string>> tokens;
  for (const char* name : kSpecialTokenNames) {
    const auto it = config.find(name);
    if (it == config.end()) continue;
    if (auto text = TokenText(*it, path + ": " + name)) tokens.emplace_back(name, *text);
  }
  const auto extra = config.find("extra_special_tokens");
  if (extra != config.end() && extra->is_object()) {
    for (auto it = extra->begin(); it != extra->end(); ++it) {
      if (auto text = TokenText(it.value(), path + ": extra_special_tokens." + it.key())) {
        tokens.emplace_back(it.key(), *text);
      }
    }
  }
  return tokens;
}

// The template text in tokenizer_config.json, or nullopt when it has none.
std::optional<std::string> ConfigTemplate(const json& config, const std::string& where) {
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (size_t i = 0; i < it->size(); ++i) {
      const json& entry = (*it)[i];
      const std::string at = where + "[" + std::to_string(i) + "]";
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
          !entry["name"].is_string() || !entry["template"].is_string()) {
        throw TrainError(at + ": must be {\"name\": string, \"template\": string}");
      }
      if (entry["name"] == "default") return entry["template"].get<std::string>();
    }
    throw TrainError(where + ": a list of named templates without one named \"default\"");
  }
  throw TrainError(where + ": must be a string or a list of {name, template}");
}

// Where two renderings part. The texts hold the data's messages, and errors never quote the
// data: the byte offset and lengths only.
std::string Difference(const std::string& a, const std::string& b) {
  size_t at = 0;
  while (at < a.size() && at < b.size() && a[at] == b[at]) ++at;
  return "they differ at byte " + std::to_string(at) + " of " + std::to_string(a.size()) + " and " +
         std::to_string(b.size());
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

Value Prefix(const Value& messages, size_t count) {
  return Value::List(Value::Items(messages.items().begin(),
                                  messages.items().begin() + static_cast<std::ptrdiff_t>(count)));
}

}  // namespace

std::unique_ptr<HfChatTemplate> HfChatTemplate::FromModelDir(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  const std::string config_path = (dir / kConfigFileName).string();
  json config = json::object();
  if (fs::exists(config_path)) {
    config = ParseJsonOrThrow<json>(ReadFile(config_path), config_path + ": ");
    if (!config.is_object()) throw TrainError(config_path + ": must be a JSON object");
  }
  std::vector<std::pair<std::string, std::string>> tokens = ReadSpecialTokens(config, config_path);
  const fs::path jinja_path = dir / kJinjaFileName;
  if (fs::exists(jinja_path)) {
    return std::make_unique<HfChatTemplate>(ReadFile(jinja_path.string()), jinja_path.string(),
                                            std::move(tokens));
  }
  const std::string where = config_path + ": chat_template";
  const std::optional<std::string> source = ConfigTemplate(config, where);
  if (!source) return nullptr;
  return std::make_unique<HfChatTemplate>(*source, where, std::move(tokens));
}

HfChatTemplate::HfChatTemplate(const std::string& source, std::string where,
                               std::vector<std::pair<std::string, std::string>> special_tokens)
    : template_(source, std::move(where)) {
  for (auto& [name, text] : special_tokens) {
    special_tokens_.emplace_back(name, Value::String(std::move(text)));
  }
}

std::string HfChatTemplate::SpecialToken(const std::string& name) const {
  for (const auto& [key, value] : special_tokens_) {
    if (key == name) return value.string_value();
  }
  return "";
}

std::string HfChatTemplate::Render(const Value& messages, bool add_generation_prompt) const {
  if (!messages.is_list()) throw TrainError(where() + ": messages must be a list");
  // transformers drops the keys whose value is None from every message.
  Value::Items cleaned;
  for (size_t i = 0; i < messages.items().size(); ++i) {
    const Value& message = messages.items()[i];
    if (!message.is_dict()) {
      throw TrainError("messages[" + std::to_string(i) + "]: must be an object");
    }
    Value::Entries entries;
    for (const auto& entry : message.entries()) {
      if (!entry.second.is_none()) entries.push_back(entry);
    }
    cleaned.push_back(Value::Dict(std::move(entries)));
  }
  jinja::Variables variables = special_tokens_;
  variables.emplace_back("messages", Value::List(std::move(cleaned)));
  variables.emplace_back("tools", Value::None());
  variables.emplace_back("documents", Value::None());
  variables.emplace_back("add_generation_prompt", Value::Bool(add_generation_prompt));
  return template_.Render(variables);
}

HfChatTemplate::Turns HfChatTemplate::SplitTurns(const Value& messages) const {
  Turns turns;
  turns.text = Render(messages, /*add_generation_prompt=*/false);
  const std::string& full = turns.text;
  const std::string cannot = where() + ": cannot split the template into turns: ";
  for (size_t i = 0; i < messages.items().size(); ++i) {
    const Value* role = messages.items()[i].Find("role");
    if (role == nullptr || !role->is_string() || role->string_value() != "assistant") continue;
    const std::string index = std::to_string(i);
    const std::string prompt = Render(Prefix(messages, i), /*add_generation_prompt=*/true);
    const std::string with_turn = Render(Prefix(messages, i + 1), /*add_generation_prompt=*/false);
    if (!StartsWith(with_turn, prompt)) {
      throw TrainError(cannot + "messages[:" + index +
                       "] with add_generation_prompt=True does not start messages[:" +
                       std::to_string(i + 1) + "] (" + Difference(prompt, with_turn) + ")");
    }
    if (!StartsWith(full, prompt)) {
      throw TrainError(cannot + "messages[:" + index +
                       "] with add_generation_prompt=True does not start the whole conversation (" +
                       Difference(prompt, full) + ")");
    }
    size_t end = prompt.size();
    while (end < with_turn.size() && end < full.size() && with_turn[end] == full[end]) ++end;
    const size_t tail = with_turn.size() - end;
    if (tail > 0 &&
        (tail > full.size() || full.compare(full.size() - tail, tail, with_turn, end, tail) != 0)) {
      throw TrainError(cannot + "assistant messages[" + index +
                       "] renders differently alone than inside the whole conversation (" +
                       Difference(with_turn, full) + ")");
    }
    // Whitespace after the turn's last character (the newline after <|im_end|>) is layout the
    // template adds, not something the model should learn to say.
    while (end > prompt.size()) {
      size_t start = end - 1;
      while (start > prompt.size() && (static_cast<unsigned char>(full[start]) & 0xc0) == 0x80) {
        --start;
      }
      size_t pos = start;
      if (!jinja::IsPythonSpace(DecodeUtf8(full, &pos))) break;
      end = start;
    }
    if (!turns.assistant_spans.empty() && prompt.size() < turns.assistant_spans.back().second) {
      throw TrainError(cannot + "assistant messages[" + index + "] overlaps the turn before it");
    }
    turns.assistant_spans.emplace_back(prompt.size(), end);
  }
  return turns;
}

}  // namespace tuneledger::train
