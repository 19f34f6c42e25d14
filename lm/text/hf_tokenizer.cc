#include "lm/text/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "lm/json_parse.h"
#include "lm/text/hf_json.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

json ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw TrainError(path + ": cannot open");
  return ParseJsonOrThrow<json>(in, path + ": ");
}

// What post_processor TemplateProcessing puts around a single sequence.
struct SequenceTemplate {
  std::optional<int64_t> before;
  std::optional<int64_t> after;
};

int64_t TemplateSpecialId(const json& processor, const json& item, const std::string& where) {
  const std::string name =
      RequireString(RequireField(item, "SpecialToken", where), "id", where + ".SpecialToken");
  const json& specials = RequireField(processor, "special_tokens", where);
  const auto it = specials.find(name);
  if (it == specials.end()) {
    throw TrainError(where + ": special token \"" + name + "\" is not in special_tokens");
  }
  const json& ids = RequireField(*it, "ids", where + " special_tokens[\"" + name + "\"]");
  if (!ids.is_array() || ids.size() != 1 || !ids[0].is_number_integer()) {
    throw TrainError(where + ": special_tokens[\"" + name +
                     "\"].ids: only a single id per special token is supported");
  }
  return ids[0].get<int64_t>();
}

void ReadPostProcessor(const json& processor, const std::string& where, SequenceTemplate* out) {
  if (processor.is_null()) return;
  const std::string type = RequireType(processor, where);
  if (type == "ByteLevel") return;  // only trims offsets
  if (type == "Sequence") {
    const json& list = RequireField(processor, "processors", where);
    if (!list.is_array()) throw TrainError(where + ".processors: must be an array");
    for (size_t i = 0; i < list.size(); ++i) {
      ReadPostProcessor(list[i], where + ".processors[" + std::to_string(i) + "]", out);
    }
    return;
  }
  if (type != "TemplateProcessing") {
    throw TrainError(where + ".type: post-processor \"" + type +
                     "\" is not supported (TemplateProcessing, ByteLevel, Sequence are)");
  }
  const json& single = RequireField(processor, "single", where);
  if (!single.is_array()) throw TrainError(where + ".single: must be an array");
  std::optional<size_t> sequence_at;
  for (size_t i = 0; i < single.size(); ++i) {
    if (single[i].contains("Sequence")) {
      if (sequence_at) throw TrainError(where + ".single: more than one $A");
      sequence_at = i;
    } else if (!single[i].contains("SpecialToken")) {
      throw TrainError(where + ".single[" + std::to_string(i) +
                       "]: must be a SpecialToken or a Sequence");
    }
  }
  if (!sequence_at) throw TrainError(where + ".single: has no $A");
  if (*sequence_at > 1 || single.size() - *sequence_at > 2) {
    throw TrainError(where +
                     ".single: at most one special token before and one after $A is supported");
  }
  if (*sequence_at == 1) {
    out->before = TemplateSpecialId(processor, single[0], where + ".single[0]");
  }
  if (single.size() - *sequence_at == 2) {
    const size_t last = single.size() - 1;
    out->after =
        TemplateSpecialId(processor, single[last], where + ".single[" + std::to_string(last) + "]");
  }
}

// The content of a tokenizer_config.json token field: "text", {"content": "text"} or null.
std::optional<std::string> ConfigTokenContent(const json& config, const char* field,
                                              const std::string& where) {
  const auto it = config.find(field);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  throw TrainError(where + ": " + field + ": must be a string, {\"content\": ...} or null");
}

}  // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::FromModelDir(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  const fs::path config = dir / kConfigFileName;
  return FromFiles((dir / kFileName).string(), fs::exists(config) ? config.string() : "");
}

std::unique_ptr<HfTokenizer> HfTokenizer::FromFiles(const std::string& tokenizer_path,
                                                    const std::string& config_path) {
  const json file = ReadJsonFile(tokenizer_path);
  if (!file.is_object()) throw TrainError(tokenizer_path + ": must be a JSON object");
  const std::string where = tokenizer_path + ": ";
  auto section = [&](const char* name) -> const json& {
    static const json kNull;
    const auto it = file.find(name);
    return it == file.end() ? kNull : *it;
  };
  std::unique_ptr<HfTokenizer> tokenizer(new HfTokenizer());
  tokenizer->normalizer_ = ParseHfNormalizer(section("normalizer"), where + "normalizer");
  tokenizer->pre_tokenizer_ =
      ParseHfPreTokenizer(section("pre_tokenizer"), where + "pre_tokenizer");
  if (section("model").is_null()) throw TrainError(where + "model: missing");
  tokenizer->model_ = std::make_unique<HfBpeModel>(section("model"), where + "model");
  tokenizer->decoder_ = ParseHfDecoder(section("decoder"), where + "decoder");
  tokenizer->added_tokens_ = std::make_unique<HfAddedTokens>(
      section("added_tokens"), tokenizer->normalizer_.get(), where + "added_tokens");
  tokenizer->vocab_size_ =
      std::max(tokenizer->model_->id_bound(), tokenizer->added_tokens_->id_bound());
  tokenizer->ReadSpecialTokens(file, tokenizer_path, config_path);
  return tokenizer;
}

void HfTokenizer::ReadSpecialTokens(const json& file, const std::string& tokenizer_path,
                                    const std::string& config_path) {
  SequenceTemplate sequence_template;
  if (const auto it = file.find("post_processor"); it != file.end()) {
    ReadPostProcessor(*it, tokenizer_path + ": post_processor", &sequence_template);
  }
  json config = json::object();
  if (!config_path.empty()) {
    config = ReadJsonFile(config_path);
    if (!config.is_object()) throw TrainError(config_path + ": must be a JSON object");
  }
  auto resolve = [&](const char* field) -> std::optional<int64_t> {
    const std::optional<std::string> content = ConfigTokenContent(config, field, config_path);
    if (!content) return std::nullopt;
    if (auto id = added_tokens_->FindByContent(*content)) return id;
    if (auto id = model_->TokenToId(*content)) return id;
    throw TrainError(config_path + ": " + field + ": \"" + *content + "\" is not a token of " +
                     tokenizer_path);
  };
  auto flag = [&](const char* field) -> std::optional<bool> {
    const auto it = config.find(field);
    if (it == config.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) throw TrainError(config_path + ": " + field + ": must be a boolean");
    return it->get<bool>();
  };
  // The config names the tokens; the template says which ones wrap a sequence. Where both name
  // one they must agree, or what the data adds would depend on which file we believed.
  auto combine = [&](const char* field, std::optional<int64_t> from_config,
                     std::optional<int64_t> from_template) -> int64_t {
    if (from_config && from_template && *from_config != *from_template) {
      throw TrainError(config_path + ": " + field + " is id " + std::to_string(*from_config) +
                       " but " + tokenizer_path + "'s post_processor template uses id " +
                       std::to_string(*from_template));
    }
    return from_config ? *from_config : from_template ? *from_template : -1;
  };
  bos_id_ = combine("bos_token", resolve("bos_token"), sequence_template.before);
  eos_id_ = combine("eos_token", resolve("eos_token"), sequence_template.after);
  const std::optional<int64_t> pad = resolve("pad_token");
  pad_id_ = pad ? *pad : eos_id_ >= 0 ? eos_id_ : 0;
  add_bos_ = flag("add_bos_token").value_or(sequence_template.before.has_value());
  add_eos_ = flag("add_eos_token").value_or(sequence_template.after.has_value());
  if (add_bos_ && bos_id_ < 0) {
    throw TrainError(config_path + ": add_bos_token is true but no bos_token is named");
  }
  if (add_eos_ && eos_id_ < 0) {
    throw TrainError(config_path + ": add_eos_token is true but no eos_token is named");
  }
}

void HfTokenizer::EncodeText(std::string_view text, bool at_start,
                             std::vector<int64_t>* ids) const {
  std::string normalized(text);
  if (normalizer_) normalizer_->Normalize(&normalized);
  std::vector<PreToken> pieces;
  for (const HfAddedTokens::Segment& segment : added_tokens_->Split(normalized, true)) {
    if (segment.id >= 0) {
      ids->push_back(segment.id);
      continue;
    }
    if (segment.text.empty()) continue;
    pieces.clear();
    pieces.push_back({std::string(segment.text), at_start && segment.begin == 0});
    if (pre_tokenizer_) pre_tokenizer_->PreTokenize(&pieces);
    for (const PreToken& piece : pieces) model_->Tokenize(piece.text, ids);
  }
}

std::vector<int64_t> HfTokenizer::Encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const HfAddedTokens::Segment& segment : added_tokens_->Split(text, false)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
    } else if (!segment.text.empty()) {
      EncodeText(segment.text, segment.begin == 0, &ids);
    }
  }
  return ids;
}

std::string HfTokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    const std::string* token = nullptr;
    if (const HfAddedToken* added = added_tokens_->FindById(id)) {
      token = added->normalized ? &added->match : &added->content;
    } else {
      token = model_->IdToToken(id);
    }
    if (token == nullptr || added_tokens_->IsSpecialContent(*token)) continue;
    tokens.push_back(*token);
  }
  std::string text;
  if (decoder_) {
    decoder_->DecodeChain(&tokens);
    for (const std::string& token : tokens) text += token;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) text += ' ';
      text += tokens[i];
    }
  }
  return text;
}

}  // namespace tuneledger::train
