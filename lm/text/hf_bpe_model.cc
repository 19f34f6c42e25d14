#include "lm/text/hf_bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

using nlohmann::json;

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

size_t Utf8Length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// The tokenizers library's Word: a doubly linked list of symbols merged in place.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool removed;
};

struct Merge {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // std::priority_queue is a max-heap: "less" means higher rank, then later position.
  bool operator<(const Merge& other) const {
    return rank != other.rank ? rank > other.rank : pos > other.pos;
  }
};

std::string OptionalString(const json& model, const char* field, const std::string& where) {
  const auto it = model.find(field);
  if (it == model.end() || it->is_null()) return "";
  if (!it->is_string()) throw TrainError(where + "." + field + ": must be a string or null");
  return it->get<std::string>();
}

bool OptionalBool(const json& model, const char* field, const std::string& where) {
  const auto it = model.find(field);
  if (it == model.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw TrainError(where + "." + field + ": must be a boolean");
  return it->get<bool>();
}

}  // namespace

HfBpeModel::HfBpeModel(const json& model, const std::string& where) {
  if (!model.is_object()) throw TrainError(where + ": must be an object");
  const std::string type = model.value("type", "BPE");
  if (type != "BPE") {
    throw TrainError(where + ".type: \"" + type +
                     "\" is not supported (only BPE; WordPiece, WordLevel and Unigram are not)");
  }
  if (const auto it = model.find("dropout");
      it != model.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0)) {
    throw TrainError(where + ".dropout: must be null or 0 (BPE dropout is for training only)");
  }
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    throw TrainError(where + ".vocab: must be an object of token -> id");
  }
  vocab_.reserve(vocab->size());
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 30)) {
      throw TrainError(where + ".vocab[\"" + token + "\"]: must be an id in [0, 2^30)");
    }
    const int32_t value = id.get<int32_t>();
    vocab_.emplace(token, value);
    if (static_cast<size_t>(value) >= id_to_token_.size()) {
      id_to_token_.resize(value + 1);
      has_token_.resize(value + 1, false);
    }
    id_to_token_[value] = token;
    has_token_[value] = true;
  }
  continuing_subword_prefix_ = OptionalString(model, "continuing_subword_prefix", where);
  end_of_word_suffix_ = OptionalString(model, "end_of_word_suffix", where);
  fuse_unk_ = OptionalBool(model, "fuse_unk", where);
  byte_fallback_ = OptionalBool(model, "byte_fallback", where);
  ignore_merges_ = OptionalBool(model, "ignore_merges", where);
  if (const std::string unk = OptionalString(model, "unk_token", where); !unk.empty()) {
    const auto it = vocab_.find(unk);
    if (it == vocab_.end()) {
      throw TrainError(where + ".unk_token: \"" + unk + "\" is not in the vocab");
    }
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = vocab_.find(std::string_view(name));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) {
    throw TrainError(where + ".merges: must be an array");
  }
  merges_.reserve(merges->size());
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const json& merge = (*merges)[rank];
    const std::string at = where + ".merges[" + std::to_string(rank) + "]";
    std::string left, right;
    if (merge.is_string()) {
      // "a b": exactly one space (the tokenizers library splits on ' ' and wants two parts).
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        throw TrainError(at + ": \"" + text + "\" must be two tokens separated by one space");
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      throw TrainError(at + ": must be \"a b\" or [\"a\", \"b\"]");
    }
    const auto left_id = vocab_.find(left);
    const auto right_id = vocab_.find(right);
    if (left_id == vocab_.end()) throw TrainError(at + ": \"" + left + "\" is not in the vocab");
    if (right_id == vocab_.end()) throw TrainError(at + ": \"" + right + "\" is not in the vocab");
    std::string merged = left;
    const size_t prefix = continuing_subword_prefix_.size();
    if (prefix > 0 && right.compare(0, prefix, continuing_subword_prefix_) == 0) {
      merged += right.substr(prefix);
    } else {
      merged += right;
    }
    const auto merged_id = vocab_.find(merged);
    if (merged_id == vocab_.end()) {
      throw TrainError(at + ": the merged token \"" + merged + "\" is not in the vocab");
    }
    // A repeated pair keeps its last rank, as the library's map does.
    merges_[PairKey(left_id->second, right_id->second)] = {static_cast<int32_t>(rank),
                                                           merged_id->second};
  }
}

std::optional<int64_t> HfBpeModel::TokenToId(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* HfBpeModel::IdToToken(int64_t id) const {
  if (id < 0 || id >= id_bound() || !has_token_[id]) return nullptr;
  return &id_to_token_[id];
}

std::vector<int32_t> HfBpeModel::MergeWord(std::string_view word) const {
  // 1. One symbol per character (or per byte with byte_fallback, or unk).
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, false});
  };
  int32_t pending_unk = -1;  // an unk not yet added (fused unknowns extend it)
  std::string piece;
  for (size_t i = 0; i < word.size();) {
    const size_t length =
        std::min(Utf8Length(static_cast<unsigned char>(word[i])), word.size() - i);
    const std::string_view character = word.substr(i, length);
    const bool first = i == 0;
    i += length;
    const bool last = i == word.size();
    std::string_view key = character;
    if ((!first && !continuing_subword_prefix_.empty()) || (last && !end_of_word_suffix_.empty())) {
      piece.clear();
      if (!first) piece += continuing_subword_prefix_;
      piece += character;
      if (last) piece += end_of_word_suffix_;
      key = piece;
    }
    if (const auto it = vocab_.find(key); it != vocab_.end()) {
      if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
      add(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : key) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : key) add(byte_ids_[b]);
        continue;
      }
    }
    if (unk_id_) {
      // Unfused unknowns each become one unk; fused ones collapse into the pending one.
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unk token the character is dropped, as the library does.
  }
  if (pending_unk >= 0) add(pending_unk);
  if (!symbols.empty()) symbols.back().next = -1;

  // 2. Merge the lowest-ranked pair, leftmost first, until no pair has a merge.
  std::priority_queue<Merge> queue;
  auto push_pair = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    const auto it = merges_.find(PairKey(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int32_t pos = 0; pos + 1 < static_cast<int32_t>(symbols.size()); ++pos) push_pair(pos);
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.removed || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const auto it = merges_.find(PairKey(left.id, symbols[right_pos].id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    symbols[right_pos].removed = true;
    left.next = symbols[right_pos].next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  std::vector<int32_t> ids;
  for (const Symbol& symbol : symbols) {
    if (!symbol.removed) ids.push_back(symbol.id);
  }
  return ids;
}

void HfBpeModel::Tokenize(std::string_view word, std::vector<int64_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = MergeWord(word);
  ids->insert(ids->end(), merged.begin(), merged.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::move(merged));
  }
}

}  // namespace tuneledger::train
