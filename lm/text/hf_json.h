// Field readers for tokenizer.json sections that name the JSON path in their TrainErrors
// ("<file>: pre_tokenizer.pretokenizers[1].behavior: must be a string").
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_LM_TEXT_HF_JSON_H_
#define TUNELEDGER_LM_TEXT_HF_JSON_H_

#include <nlohmann/json.hpp>
#include <string>

#include "lm/trainer_error.h"

namespace tuneledger::train {

inline const nlohmann::json& RequireField(const nlohmann::json& object, const char* field,
                                          const std::string& where) {
  if (!object.is_object()) throw TrainError(where + ": must be an object");
  const auto it = object.find(field);
  if (it == object.end()) throw TrainError(where + "." + field + ": missing");
  return *it;
}

inline std::string RequireString(const nlohmann::json& object, const char* field,
                                 const std::string& where) {
  const nlohmann::json& value = RequireField(object, field, where);
  if (!value.is_string()) throw TrainError(where + "." + field + ": must be a string");
  return value.get<std::string>();
}

// The "type" of a section.
inline std::string RequireType(const nlohmann::json& object, const std::string& where) {
  return RequireString(object, "type", where);
}

inline bool OptionalBool(const nlohmann::json& object, const char* field, bool fallback,
                         const std::string& where) {
  const auto it = object.find(field);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw TrainError(where + "." + field + ": must be a boolean");
  return it->get<bool>();
}

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_JSON_H_
