// The trainer's one way to parse a JSON file or line it reads: every nlohmann failure becomes a
// TrainError that names the place (`where`) and never quotes the text (NotValidJson,
// trainer_error.h). Besides syntax errors (parse_error) that includes a number too large for a
// double or an int64 (out_of_range 406), which would otherwise escape as nlohmann's own
// exception (tests/fuzz/jsonl_dataset/regressions/number-overflow).
//
// Thread safety: a pure function.
#ifndef TUNELEDGER_LM_JSON_PARSE_H_
#define TUNELEDGER_LM_JSON_PARSE_H_

#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "lm/trainer_error.h"

namespace tuneledger::train {

// `input`: anything Json::parse takes (a string, an istream). `where` prefixes the message, e.g.
// "data.jsonl:7: " or "config.json: ".
template <typename Json = nlohmann::json, typename Input>
Json ParseJsonOrThrow(Input&& input, const std::string& where) {
  try {
    return Json::parse(std::forward<Input>(input));
  } catch (const nlohmann::json::parse_error& e) {
    throw TrainError(where + NotValidJson(e.byte));
  } catch (const nlohmann::json::exception& e) {
    throw TrainError(where + "not valid JSON: a value out of range, e.g. a number too large (" +
                     "nlohmann error " + std::to_string(e.id) + ")");
  }
}

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_JSON_PARSE_H_
