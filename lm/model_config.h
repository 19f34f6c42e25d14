// LlamaConfig: the architecture of a Llama-family causal LM, parsed from a Hugging Face
// config.json. Supported: model_type "llama" (LlamaForCausalLM), "qwen2" (Qwen2ForCausalLM,
// which implies q/k/v bias) and "mistral" (MistralForCausalLM: Llama with a sliding attention
// window, which the recipe honours by refusing sequences longer than the window). RoPE scaling
// of type linear, dynamic (NTK), llama3 and yarn, in both spellings (transformers 4's rope_theta
// + rope_scaling, transformers 5's rope_parameters). Anything the model cannot honour (another
// architecture, hidden_act other than silu, another rope type, Qwen2 sliding-window attention)
// is a TrainError naming the config field, so a user never trains a silently different model.
//
// Shape legend: D hidden_size, H num_attention_heads, Hkv num_key_value_heads, Dh head_dim,
// V vocab_size, F intermediate_size.
#ifndef TUNELEDGER_LM_MODEL_CONFIG_H_
#define TUNELEDGER_LM_MODEL_CONFIG_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace tuneledger::train {

// RoPE scaling (rotary_embedding.h applies it). Field names are Hugging Face's.
struct RopeScaling {
  enum class Type { kDefault, kLinear, kDynamic, kLlama3, kYarn };
  Type type = Type::kDefault;
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  // llama3, yarn: the context the model was pre-trained with; 0 = max_position_embeddings.
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;                 // yarn
  double beta_slow = 1.0;                  // yarn
  std::optional<double> attention_factor;  // yarn; nullopt = from factor (and mscale)
  std::optional<double> mscale;            // yarn
  std::optional<double> mscale_all_dim;    // yarn
  bool truncate = true;                    // yarn

  static const char* TypeName(Type type);  // "default", "linear", ...
};

struct LlamaConfig {
  std::string model_type = "llama";  // "llama", "qwen2" or "mistral"
  int64_t vocab_size = 0;            // V
  int64_t hidden_size = 0;           // D
  int64_t intermediate_size = 0;     // F
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;  // H
  int64_t num_key_value_heads = 0;  // Hkv; config.json default: H (no GQA)
  int64_t head_dim = 0;             // Dh; config.json default: D / H
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  std::optional<int64_t> sliding_window;  // mistral: tokens each position attends to
  bool tie_word_embeddings = false;       // lm_head shares model.embed_tokens.weight
  bool attention_bias = false;            // bias on q_proj, k_proj, v_proj (Qwen2: always)
  bool attention_output_bias = false;     // bias on o_proj (Llama with attention_bias: true)
  bool mlp_bias = false;                  // bias on gate_proj, up_proj, down_proj
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

  // The model attends over whole sequences, which is Mistral's sliding-window attention only
  // while a sequence fits the window: TrainError naming spec.training.seq_len when it does not.
  void CheckSequenceLength(int64_t seq_len) const;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_MODEL_CONFIG_H_
