#include "lm/data/jsonl_dataset.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "lm/data/chat_template.h"
#include "lm/json_parse.h"
#include "lm/text/jinja_value.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

// Objects keep the file's key order, as Python's json.loads does: a chat template can see it
// (a message's items(), a tool call's arguments through tojson).
using json = nlohmann::ordered_json;

const std::string& RequireString(const json& record, const char* field) {
  const json& value = record.at(field);
  if (!value.is_string()) {
    // The value's type only: a data file may hold anything, and errors travel into job
    // messages, so they never quote a file's content.
    throw TrainError(std::string(field) + ": must be a string, got " + value.type_name());
  }
  return value.get_ref<const std::string&>();
}

// Appends `ids` with labels = ids when `trains`, else kIgnoreLabel.
void Append(TokenizedExample& example, const std::vector<int64_t>& ids, bool trains) {
  example.input_ids.insert(example.input_ids.end(), ids.begin(), ids.end());
  example.labels.insert(example.labels.end(), ids.size(), kIgnoreLabel);
  if (trains) std::copy(ids.begin(), ids.end(), example.labels.end() - ids.size());
}

// BOS opens an example when the tokenizer's model expects one (Tokenizer::add_bos: Llama does,
// Qwen2 has no BOS). EOS always closes it, whatever add_eos says: a fine-tune must see where an
// answer ends to learn to stop (Hugging Face TRL's SFTTrainer and torchtune append it the same
// way), and a tokenizer that names no EOS at all adds nothing.
void AppendBos(TokenizedExample& example, const Tokenizer& tokenizer, bool trains) {
  if (tokenizer.add_bos() && tokenizer.bos_id() >= 0) Append(example, {tokenizer.bos_id()}, trains);
}

void AppendEos(TokenizedExample& example, const Tokenizer& tokenizer, bool trains) {
  if (tokenizer.eos_id() >= 0) Append(example, {tokenizer.eos_id()}, trains);
}

std::vector<int64_t> ReadIds(const json& record, const char* field, int64_t vocab_size,
                             bool allow_ignore) {
  const json& value = record.at(field);
  if (!value.is_array()) throw TrainError(std::string(field) + ": must be an array of integers");
  std::vector<int64_t> ids;
  ids.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const json& item = value[i];
    const std::string where = std::string(field) + "[" + std::to_string(i) + "]";
    if (!item.is_number_integer())
      throw TrainError(where + ": must be an integer, got " + item.type_name());
    const int64_t id = item.get<int64_t>();
    const bool ok = (id >= 0 && id < vocab_size) || (allow_ignore && id == kIgnoreLabel);
    if (!ok) {
      throw TrainError(where + ": token id " + std::to_string(id) + " is outside [0, " +
                       std::to_string(vocab_size) + ")");
    }
    ids.push_back(id);
  }
  return ids;
}

TokenizedExample FromText(const json& record, const Tokenizer& tokenizer) {
  TokenizedExample example;
  AppendBos(example, tokenizer, true);
  Append(example, tokenizer.Encode(RequireString(record, "text")), true);
  AppendEos(example, tokenizer, true);
  return example;
}

TokenizedExample FromPromptCompletion(const json& record, const Tokenizer& tokenizer) {
  TokenizedExample example;
  AppendBos(example, tokenizer, false);
  Append(example, tokenizer.Encode(RequireString(record, "prompt")), false);
  Append(example, tokenizer.Encode(RequireString(record, "completion")), true);
  AppendEos(example, tokenizer, true);
  return example;
}

size_t CommonPrefixLength(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

// The conversation rendered by the model's template and encoded whole; labels on the tokens of
// the assistant turns (see the header). A turn boundary is found in the token sequence as the
// length of what the text before it encodes to (where that is a prefix of the whole encoding);
// otherwise the first token that differs straddles the boundary.
TokenizedExample FromMessagesWithTemplate(const json& value, const Tokenizer& tokenizer,
                                          const HfChatTemplate& chat_template) {
  bool ends_with_assistant = false;
  bool has_assistant = false;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& item = value[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!item.is_object() || !item.contains("role") || !item["role"].is_string()) {
      throw TrainError(where + ": must be an object with a string \"role\"");
    }
    ends_with_assistant = item["role"] == "assistant";
    has_assistant = has_assistant || ends_with_assistant;
  }
  if (!has_assistant) throw TrainError("messages: no assistant turn, so nothing to train on");
  const HfChatTemplate::Turns turns = chat_template.SplitTurns(jinja::FromJson(value));
  const std::string& text = turns.text;
  const std::vector<int64_t> ids = tokenizer.Encode(text);
  std::vector<int64_t> labels(ids.size(), kIgnoreLabel);
  bool last_turn_has_eos = false;
  for (const auto& [begin, end] : turns.assistant_spans) {
    const size_t first = CommonPrefixLength(tokenizer.Encode(text.substr(0, begin)), ids);
    const size_t last = end == text.size()
                            ? ids.size()
                            : CommonPrefixLength(tokenizer.Encode(text.substr(0, end)), ids);
    last_turn_has_eos = false;
    for (size_t t = first; t < last; ++t) {
      labels[t] = ids[t];
      last_turn_has_eos = last_turn_has_eos || ids[t] == tokenizer.eos_id();
    }
  }
  TokenizedExample example;
  if (ids.empty() || ids.front() != tokenizer.bos_id()) AppendBos(example, tokenizer, false);
  example.input_ids.insert(example.input_ids.end(), ids.begin(), ids.end());
  example.labels.insert(example.labels.end(), labels.begin(), labels.end());
  if (ends_with_assistant && !last_turn_has_eos) AppendEos(example, tokenizer, true);
  return example;
}

TokenizedExample FromMessages(const json& record, const Tokenizer& tokenizer,
                              const DatasetOptions& options) {
  const json& value = record.at("messages");
  if (!value.is_array()) throw TrainError("messages: must be an array of {role, content}");
  if (!options.chat_template_error.empty()) throw TrainError(options.chat_template_error);
  if (options.chat_template != nullptr) {
    return FromMessagesWithTemplate(value, tokenizer, *options.chat_template);
  }
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& item = value[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!item.is_object() || !item.contains("role") || !item.contains("content")) {
      throw TrainError(where + ": must be an object with \"role\" and \"content\"");
    }
    if (!item["role"].is_string() || !item["content"].is_string()) {
      throw TrainError(where + ": role and content must be strings");
    }
    messages.push_back({item["role"].get<std::string>(), item["content"].get<std::string>()});
  }
  TokenizedExample example;
  AppendBos(example, tokenizer, false);
  for (const TemplateSegment& segment : RenderChat(messages)) {
    Append(example, tokenizer.Encode(segment.text), segment.trains);
  }
  AppendEos(example, tokenizer, messages.back().role == "assistant");
  return example;
}

TokenizedExample FromInputIds(const json& record, int64_t vocab_size) {
  TokenizedExample example;
  example.input_ids = ReadIds(record, "input_ids", vocab_size, /*allow_ignore=*/false);
  if (record.contains("labels")) {
    example.labels = ReadIds(record, "labels", vocab_size, /*allow_ignore=*/true);
    if (example.labels.size() != example.input_ids.size()) {
      throw TrainError("labels: length " + std::to_string(example.labels.size()) +
                       " differs from input_ids length " +
                       std::to_string(example.input_ids.size()));
    }
  } else {
    example.labels = example.input_ids;
  }
  return example;
}

// A target is a label at position >= 1 (position 0 is never predicted).
bool HasTargets(const TokenizedExample& example) {
  for (size_t t = 1; t < example.labels.size(); ++t) {
    if (example.labels[t] != kIgnoreLabel) return true;
  }
  return false;
}

}  // namespace

int64_t TokenizedDataset::total_tokens() const {
  int64_t total = 0;
  for (const auto& example : examples) total += static_cast<int64_t>(example.input_ids.size());
  return total;
}

TokenizedExample TokenizeRecord(const json& record, const Tokenizer& tokenizer,
                                const DatasetOptions& options, bool* truncated) {
  if (!record.is_object()) throw TrainError("each line must be a JSON object");
  const int64_t vocab_size = options.vocab_size > 0 ? options.vocab_size : tokenizer.vocab_size();
  const bool text = record.contains("text");
  const bool prompt = record.contains("prompt") || record.contains("completion");
  const bool messages = record.contains("messages");
  const bool ids = record.contains("input_ids");
  const int formats = int{text} + int{prompt} + int{messages} + int{ids};
  if (formats == 0) {
    throw TrainError(
        "no known fields: expected \"text\", \"prompt\"+\"completion\", "
        "\"messages\" or \"input_ids\"");
  }
  if (formats > 1) {
    throw TrainError(
        "mixes formats: use exactly one of \"text\", \"prompt\"+\"completion\", "
        "\"messages\", \"input_ids\"");
  }
  if (record.contains("labels") && !ids) throw TrainError("labels: only valid with input_ids");
  if (prompt && !(record.contains("prompt") && record.contains("completion"))) {
    throw TrainError("prompt and completion must come together");
  }

  TokenizedExample example = text       ? FromText(record, tokenizer)
                             : prompt   ? FromPromptCompletion(record, tokenizer)
                             : messages ? FromMessages(record, tokenizer, options)
                                        : FromInputIds(record, vocab_size);
  for (int64_t id : example.input_ids) {
    if (id < 0 || id >= vocab_size) {
      throw TrainError("token id " + std::to_string(id) + " from the tokenizer is outside the " +
                       "model's vocabulary [0, " + std::to_string(vocab_size) + ")");
    }
  }
  const bool too_long = example.input_ids.size() > static_cast<size_t>(options.seq_len);
  if (truncated != nullptr) *truncated = too_long;
  if (too_long) {
    example.input_ids.resize(options.seq_len);
    example.labels.resize(options.seq_len);
  }
  return example;
}

TokenizedDataset LoadJsonlDataset(const std::string& path, const Tokenizer& tokenizer,
                                  const DatasetOptions& options) {
  std::ifstream in(path);
  if (!in) throw TrainError(path + ": cannot open the data file");
  TokenizedDataset dataset;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    ++dataset.lines;
    const std::string where = path + ":" + std::to_string(line_number) + ": ";
    const json record = ParseJsonOrThrow<json>(line, where);
    TokenizedExample example;
    bool truncated = false;
    try {
      example = TokenizeRecord(record, tokenizer, options, &truncated);
    } catch (const TrainError& e) {
      throw TrainError(where + e.what());
    } catch (const json::exception& e) {
      throw TrainError(where + "unexpected JSON value (nlohmann error " + std::to_string(e.id) +
                       ")");
    }
    if (truncated) ++dataset.truncated;
    if (!HasTargets(example)) {
      ++dataset.dropped_no_targets;
      continue;
    }
    dataset.examples.push_back(std::move(example));
    dataset.source_lines.push_back(line_number);
  }
  if (in.bad()) throw TrainError(path + ": read error");
  if (dataset.examples.empty()) {
    throw TrainError(path + ": no example with a token to train on (" +
                     std::to_string(dataset.lines) + " lines, " +
                     std::to_string(dataset.dropped_no_targets) +
                     " left without targets after truncation to seq_len " +
                     std::to_string(options.seq_len) + ")");
  }
  return dataset;
}

std::vector<int64_t> PromptIds(const Tokenizer& tokenizer, const std::string& prompt) {
  TokenizedExample example;
  AppendBos(example, tokenizer, /*trains=*/false);
  Append(example, tokenizer.Encode(prompt), /*trains=*/false);
  return example.input_ids;
}

}  // namespace tuneledger::train
