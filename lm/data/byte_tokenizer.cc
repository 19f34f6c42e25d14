#include "lm/data/byte_tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lm/json_parse.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {

std::unique_ptr<ByteTokenizer> ByteTokenizer::FromModelDir(const std::string& model_dir) {
  const std::string path = model_dir + "/" + kConfigFileName;
  std::ifstream in(path);
  if (!in) throw TrainError(path + ": cannot open");
  const nlohmann::json config = ParseJsonOrThrow(in, path + ": ");
  if (!config.is_object() || config.value("type", "") != "byte") {
    throw TrainError(path + ": type: must be \"byte\"");
  }
  const std::pair<const char*, int64_t> expected[] = {
      {"pad_id", kPadId}, {"bos_id", kBosId}, {"eos_id", kEosId}, {"byte_offset", kByteOffset}};
  for (const auto& [field, value] : expected) {
    const auto it = config.find(field);
    if (it != config.end() && !(it->is_number_integer() && it->get<int64_t>() == value)) {
      throw TrainError(path + ": " + field + ": the byte tokenizer uses " + std::to_string(value) +
                       ", got " + it->dump());
    }
  }
  return std::make_unique<ByteTokenizer>();
}

std::string ByteTokenizer::ConfigJson() {
  nlohmann::json config = {{"type", "byte"},
                           {"pad_id", kPadId},
                           {"bos_id", kBosId},
                           {"eos_id", kEosId},
                           {"byte_offset", kByteOffset}};
  return config.dump(2) + "\n";
}

std::vector<int64_t> ByteTokenizer::Encode(const std::string& text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (unsigned char byte : text) ids.push_back(kByteOffset + byte);
  return ids;
}

std::string ByteTokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::string text;
  text.reserve(ids.size());
  for (int64_t id : ids) {
    if (id >= kByteOffset && id < kVocabSize) text += static_cast<char>(id - kByteOffset);
  }
  return text;
}

}  // namespace tuneledger::train
