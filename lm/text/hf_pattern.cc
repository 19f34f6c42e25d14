#include "lm/text/hf_pattern.h"

#include <nlohmann/json.hpp>

#include "lm/trainer_error.h"

namespace tuneledger::train {

HfPattern::HfPattern(const nlohmann::json& pattern, const std::string& where) {
  if (!pattern.is_object() || pattern.size() != 1) {
    throw TrainError(where + ": must be {\"String\": ...} or {\"Regex\": ...}");
  }
  const auto it = pattern.begin();
  const std::string kind = it.key();
  const nlohmann::json& value = it.value();
  if (!value.is_string()) throw TrainError(where + "." + kind + ": must be a string");
  const std::string& text = value.get_ref<const std::string&>();
  if (kind == "String") {
    if (text.empty()) throw TrainError(where + ".String: must not be empty");
    literal_ = text;
  } else if (kind == "Regex") {
    regex_ = UnicodeRegex::Compile(text, where + ".Regex");
  } else {
    throw TrainError(where + ": \"" + kind + "\" is not a pattern kind (String or Regex)");
  }
}

HfPattern HfPattern::Regex(std::string_view regex, const std::string& where) {
  HfPattern pattern;
  pattern.regex_ = UnicodeRegex::Compile(regex, where);
  return pattern;
}

std::vector<PatternPiece> HfPattern::FindMatches(std::string_view text) const {
  std::vector<PatternPiece> pieces;
  if (text.empty()) {
    pieces.push_back({0, 0, false});
    return pieces;
  }
  size_t previous = 0;
  auto add_match = [&](size_t begin, size_t end) {
    if (previous != begin) pieces.push_back({previous, begin, false});
    pieces.push_back({begin, end, true});
    previous = end;
  };
  if (regex_) {
    const RegexInput input(text);
    for (const auto& [begin, end] : regex_->FindAll(input)) {
      add_match(input.byte_offset(begin), input.byte_offset(end));
    }
  } else {
    for (size_t at = text.find(literal_); at != std::string_view::npos;
         at = text.find(literal_, at + literal_.size())) {
      add_match(at, at + literal_.size());
    }
  }
  if (previous != text.size()) pieces.push_back({previous, text.size(), false});
  return pieces;
}

}  // namespace tuneledger::train
