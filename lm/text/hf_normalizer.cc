#include "lm/text/hf_normalizer.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "lm/text/hf_json.h"
#include "lm/text/hf_pattern.h"
#include "lm/text/unicode.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

class NfcNormalizer : public HfNormalizer {
 public:
  void Normalize(std::string* text) const override { *text = ToNfc(*text); }
};

class LowercaseNormalizer : public HfNormalizer {
 public:
  void Normalize(std::string* text) const override { *text = ToLowercase(*text); }
};

class PrependNormalizer : public HfNormalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer : public HfNormalizer {
 public:
  ReplaceNormalizer(HfPattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string* text) const override {
    std::string out;
    out.reserve(text->size());
    for (const PatternPiece& piece : pattern_.FindMatches(*text)) {
      if (piece.is_match) {
        out += content_;
      } else {
        out.append(*text, piece.begin, piece.end - piece.begin);
      }
    }
    *text = std::move(out);
  }

 private:
  HfPattern pattern_;
  std::string content_;
};

class StripNormalizer : public HfNormalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* text) const override {
    size_t begin = 0, end = text->size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!IsWhiteSpace(DecodeUtf8(*text, &next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>((*text)[start]) & 0xC0) == 0x80) {
          --start;
        }
        size_t next = start;
        if (!IsWhiteSpace(DecodeUtf8(*text, &next))) break;
        end = start;
      }
    }
    *text = text->substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public HfNormalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<HfNormalizer>> steps)
      : steps_(std::move(steps)) {}
  void Normalize(std::string* text) const override {
    for (const auto& step : steps_) step->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<HfNormalizer>> steps_;
};

}  // namespace

std::unique_ptr<HfNormalizer> ParseHfNormalizer(const json& normalizer, const std::string& where) {
  if (normalizer.is_null()) return nullptr;
  const std::string type = RequireType(normalizer, where);
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(RequireString(normalizer, "prepend", where));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(
        HfPattern(RequireField(normalizer, "pattern", where), where + ".pattern"),
        RequireString(normalizer, "content", where));
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(OptionalBool(normalizer, "strip_left", true, where),
                                             OptionalBool(normalizer, "strip_right", true, where));
  }
  if (type == "Sequence") {
    const json& list = RequireField(normalizer, "normalizers", where);
    if (!list.is_array()) throw TrainError(where + ".normalizers: must be an array");
    std::vector<std::unique_ptr<HfNormalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = ParseHfNormalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  throw TrainError(where + ".type: normalizer \"" + type +
                   "\" is not supported (NFC, Lowercase, Prepend, Replace, Strip, Sequence are)");
}

}  // namespace tuneledger::train
