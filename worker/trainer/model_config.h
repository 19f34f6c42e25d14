// LlamaConfig: the architecture of a Llama-family causal LM, parsed from a Hugging Face
// config.json. Supported: model_type "llama" (LlamaForCausalLM) and "qwen2"
// (Qwen2ForCausalLM, which implies q/k/v bias). Anything the model cannot honour (another
// architecture, hidden_act other than silu, rope_scaling, Qwen2 sliding-window attention) is a
// TrainError naming the config field, so a user never trains a silently different model.
//
// Shape legend: D hidden_size, H num_attention_heads, Hkv num_key_value_heads, Dh head_dim,
// V vocab_size, F intermediate_size.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_CONFIG_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_CONFIG_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace tuneledger::train {

struct LlamaConfig {
  std::string model_type = "llama";  // "llama" or "qwen2"
  int64_t vocab_size = 0;            // V
  int64_t hidden_size = 0;           // D
  int64_t intermediate_size = 0;     // F
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;  // H
  int64_t num_key_value_heads = 0;  // Hkv; config.json default: H (no GQA)
  int64_t head_dim = 0;             // Dh; config.json default: D / H
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;    // lm_head shares model.embed_tokens.weight
  bool attention_bias = false;         // bias on q_proj, k_proj, v_proj (Qwen2: always)
  bool attention_output_bias = false;  // bias on o_proj (Llama with attention_bias: true)
  bool mlp_bias = false;               // bias on gate_proj, up_proj, down_proj
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;  // the first one when config.json holds a list
  std::optional<int64_t> pad_token_id;
  std::string torch_dtype = "float32";  // informational: the stored dtype
  double initializer_range = 0.02;      // std of the normal init in CreateRandom

  // Parses and validates a config.json object. Throws TrainError naming the field.
  static LlamaConfig FromJson(const nlohmann::json& json);
  // Reads `path` (a config.json). Throws TrainError naming the file and the field.
  static LlamaConfig FromFile(const std::string& path);
  // The Hugging Face config.json for this architecture (architectures, model_type, ...).
  nlohmann::json ToJson() const;

  int64_t num_kv_groups() const { return num_attention_heads / num_key_value_heads; }
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_CONFIG_H_
