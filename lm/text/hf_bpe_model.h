// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}): vocab,
// merges (as "a b" strings or ["a", "b"] pairs), unk_token/fuse_unk, byte_fallback,
// ignore_merges, continuing_subword_prefix and end_of_word_suffix; dropout must be null or 0.
// Tokenize() is the tokenizers library's merge_word + merge_all: symbols are the word's
// characters (byte-fallback <0xXX> tokens or unk for those outside the vocab), and the pair
// with the lowest merge rank, leftmost first, merges until none is left.
//
// Words shorter than 256 bytes are cached (word -> ids); the cache holds at most
// kCacheCapacity words and is emptied when full.
//
// Thread safety: the vocab and merges are immutable; the cache is guarded by cache_mutex_.
#ifndef TUNELEDGER_LM_TEXT_HF_BPE_MODEL_H_
#define TUNELEDGER_LM_TEXT_HF_BPE_MODEL_H_

#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tuneledger::train {

class HfBpeModel {
 public:
  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kMaxCachedWordBytes = 256;

  // `model` is tokenizer.json's "model" object; `where` prefixes errors ("<file>: model").
  HfBpeModel(const nlohmann::json& model, const std::string& where);

  // Appends the ids of one pre-token.
  void Tokenize(std::string_view word, std::vector<int64_t>* ids) const;

  std::optional<int64_t> TokenToId(std::string_view token) const;
  // nullptr for an id outside the vocabulary.
  const std::string* IdToToken(int64_t id) const;
  // One past the largest id.
  int64_t id_bound() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  std::vector<int32_t> MergeWord(std::string_view word) const;

  Vocab vocab_;
  std::vector<std::string> id_to_token_;  // "" for ids the vocab skips
  std::vector<bool> has_token_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  int32_t byte_ids_[256];  // <0xXX> ids for byte_fallback, -1 when absent

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>
      cache_;  // guarded by cache_mutex_
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_BPE_MODEL_H_
