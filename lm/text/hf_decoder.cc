#include "lm/text/hf_decoder.h"

#include <nlohmann/json.hpp>

#include "lm/text/hf_json.h"
#include "lm/text/hf_pattern.h"
#include "lm/text/hf_pre_tokenizer.h"
#include "lm/text/unicode.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

constexpr const char* kReplacementCharacter = "\xEF\xBF\xBD";

class ByteLevelDecoder : public HfDecoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& token : *tokens) {
      // A token with a character outside the byte table (an added token) passes as it is.
      const size_t start = bytes.size();
      bool all = true;
      for (size_t pos = 0; pos < token.size() && all;) {
        const int byte = ByteLevelByte(DecodeUtf8(token, &pos));
        if (byte < 0) {
          all = false;
        } else {
          bytes.push_back(static_cast<char>(byte));
        }
      }
      if (!all) {
        bytes.resize(start);
        bytes += token;
      }
    }
    *tokens = {Utf8Lossy(bytes)};
  }
};

class MetaspaceDecoder : public HfDecoder {
 public:
  MetaspaceDecoder(char32_t replacement, MetaspacePrependScheme scheme)
      : replacement_(replacement), scheme_(scheme) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      const std::string& token = (*tokens)[i];
      std::string out;
      out.reserve(token.size());
      for (size_t pos = 0; pos < token.size();) {
        const size_t begin = pos;
        const char32_t cp = DecodeUtf8(token, &pos);
        if (cp == replacement_) {
          // The library drops every replacement character of the first token.
          if (!(i == 0 && scheme_ != MetaspacePrependScheme::kNever)) out += ' ';
        } else {
          out.append(token, begin, pos - begin);
        }
      }
      (*tokens)[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  MetaspacePrependScheme scheme_;
};

class ByteFallbackDecoder : public HfDecoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string pending;  // bytes of consecutive <0xXX> tokens
    auto flush = [&] {
      if (pending.empty()) return;
      if (IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.push_back(kReplacementCharacter);
      }
      pending.clear();
    };
    for (std::string& token : *tokens) {
      int byte = -1;
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
        byte = HexByte(token[3], token[4]);
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    *tokens = std::move(out);
  }

 private:
  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int HexByte(char high, char low) {
    const int h = HexDigit(high), l = HexDigit(low);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
  }
};

class FuseDecoder : public HfDecoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string joined;
    for (const std::string& token : *tokens) joined += token;
    *tokens = {std::move(joined)};
  }
};

class StripDecoder : public HfDecoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, code point)
      for (size_t pos = 0; pos < token.size();) {
        const size_t begin = pos;
        chars.emplace_back(begin, DecodeUtf8(token, &pos));
      }
      size_t start_cut = 0;
      for (size_t i = 0; i < chars.size() && i < start_; ++i) {
        if (chars[i].second != content_) break;
        start_cut = i + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        const size_t index = chars.size() - i - 1;
        if (chars[index].second != content_) break;
        stop_cut = index;
      }
      if (stop_cut <= start_cut) {
        token.clear();
        continue;
      }
      const size_t begin = chars[start_cut].first;
      const size_t end = stop_cut == chars.size() ? token.size() : chars[stop_cut].first;
      token = token.substr(begin, end - begin);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public HfDecoder {
 public:
  ReplaceDecoder(HfPattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      std::string out;
      for (const PatternPiece& piece : pattern_.FindMatches(token)) {
        if (piece.is_match) {
          out += content_;
        } else {
          out.append(token, piece.begin, piece.end - piece.begin);
        }
      }
      token = std::move(out);
    }
  }

 private:
  HfPattern pattern_;
  std::string content_;
};

class BpeSuffixDecoder : public HfDecoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& token = (*tokens)[i];
      const std::string replacement = i + 1 == tokens->size() ? "" : " ";
      std::string out;
      size_t from = 0;
      for (size_t at = token.find(suffix_); !suffix_.empty() && at != std::string::npos;
           at = token.find(suffix_, from)) {
        out.append(token, from, at - from);
        out += replacement;
        from = at + suffix_.size();
      }
      out.append(token, from, std::string::npos);
      token = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public HfDecoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<HfDecoder>> steps)
      : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<HfDecoder>> steps_;
};

size_t RequireCount(const json& object, const char* field, const std::string& where) {
  const json& value = RequireField(object, field, where);
  if (!value.is_number_unsigned()) {
    throw TrainError(where + "." + field + ": must be a non-negative integer");
  }
  return value.get<size_t>();
}

}  // namespace

std::unique_ptr<HfDecoder> ParseHfDecoder(const json& decoder, const std::string& where) {
  if (decoder.is_null()) return nullptr;
  const std::string type = RequireType(decoder, where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    return std::make_unique<MetaspaceDecoder>(ParseMetaspaceReplacement(decoder, where),
                                              ParseMetaspaceScheme(decoder, where));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const std::string content = RequireString(decoder, "content", where);
    size_t pos = 0;
    const char32_t cp = content.empty() ? 0 : DecodeUtf8(content, &pos);
    if (content.empty() || pos != content.size()) {
      throw TrainError(where + ".content: must be one character");
    }
    return std::make_unique<StripDecoder>(cp, RequireCount(decoder, "start", where),
                                          RequireCount(decoder, "stop", where));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(
        HfPattern(RequireField(decoder, "pattern", where), where + ".pattern"),
        RequireString(decoder, "content", where));
  }
  if (type == "BPEDecoder") {
    return std::make_unique<BpeSuffixDecoder>(
        decoder.contains("suffix") ? RequireString(decoder, "suffix", where) : "</w>");
  }
  if (type == "Sequence") {
    const json& list = RequireField(decoder, "decoders", where);
    if (!list.is_array()) throw TrainError(where + ".decoders: must be an array");
    std::vector<std::unique_ptr<HfDecoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = ParseHfDecoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  throw TrainError(where + ".type: decoder \"" + type +
                   "\" is not supported (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, "
                   "Replace, BPEDecoder, Sequence are)");
}

}  // namespace tuneledger::train
