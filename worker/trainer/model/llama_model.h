// LlamaForCausalLM: the Hugging Face Llama causal LM (also Qwen2), with optional LoRA.
//
// Shape legend: B batch, T tokens, D hidden, H heads, Hkv kv heads, Dh head dim, V vocab,
// F intermediate, r LoRA rank.
//
//   h0 = embed_tokens[input_ids]                                   [B,T,D]
//   h_{l+1} = layers[l](h_l, cos, sin)   (RoPE cos/sin [T,Dh])      [B,T,D]
//   logits = norm(h_L) W_lm^T            (W_lm = embed_tokens.weight when tied)   [B,T,V]
//
// Attention is causal and there is no padding mask: pad on the right and mask the padded
// labels (-100) in the loss. Activations (the residual stream and everything computed from it)
// are in ModelOptions::activation_dtype: fp32, or bf16/fp16 end to end, where norm statistics
// (rms_norm.h), the attention softmax and the loss (causal_lm_loss.h) still compute in fp32.
// Base weights are held in ModelOptions::base_dtype (see lora_linear.h for how low-precision
// weights are multiplied); LoRA weights, their gradients and optimizer state are fp32.
//
// Module and parameter names are Hugging Face's exactly: model.embed_tokens.weight,
// model.layers.N.self_attn.{q,k,v,o}_proj.weight (+ .bias), model.layers.N.mlp.{gate,up,
// down}_proj.weight, model.layers.N.{input,post_attention}_layernorm.weight, model.norm.weight,
// lm_head.weight (absent when tied), and LoRA's ...q_proj.lora_A.weight / lora_B.weight.
//
// Randomness (LoRA A init, dropout) draws from torch's default generator: seed it first.
// Thread safety: none (a torch::nn::Module); one training thread owns the model.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_MODEL_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_MODEL_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lm/model_config.h"
#include "worker/trainer/model/llama_attention.h"
#include "worker/trainer/model/llama_decoder_layer.h"
#include "worker/trainer/model/lora_linear.h"
#include "worker/trainer/model/rms_norm.h"
#include "worker/trainer/model/rotary_embedding.h"

namespace tuneledger::train {

struct ModelOptions {
  // Storage dtype of the frozen base weights (embeddings, projections, lm_head): kFloat32,
  // kBFloat16 or kFloat16. Norm weights and LoRA stay fp32.
  torch::Dtype base_dtype = torch::kFloat32;
  // dtype of the activations: kFloat32, or kBFloat16 / kFloat16 (normally base_dtype: the GEMMs
  // then need no casts). The recipe picks base_dtype on CUDA and fp32 on CPU, where low-precision
  // arithmetic is slow; tests/trainer/model_activation_dtype_test.cc runs bf16 and fp16 on CPU.
  torch::Dtype activation_dtype = torch::kFloat32;
  // Recompute each decoder layer in backward instead of keeping its activations.
  bool gradient_checkpointing = false;
  // Full fine-tuning: every base weight is trainable (use with base_dtype kFloat32).
  bool train_base = false;
  // QLoRA (lora.quantize_base): the decoder layers' q/k/v/o/gate/up/down projections are
  // quantized once their weights are loaded (QuantizeBaseWeights) and dequantized to base_dtype
  // in each GEMM (lora_linear.h). Embeddings, norms, biases and lm_head stay in base_dtype.
  // Not with train_base.
  quant::BaseQuantization quantize_base = quant::BaseQuantization::kNone;
};

// The decoder stack (Hugging Face LlamaModel), registered as "model".
class LlamaModelImpl : public torch::nn::Module {
 public:
  LlamaModelImpl(const LlamaConfig& config, const LoraOptions* lora, const ModelOptions& options);

  // input_ids [B,T] int64 -> final normed hidden states [B,T,D] in activation_dtype.
  torch::Tensor forward(const torch::Tensor& input_ids);

  torch::nn::Embedding embed_tokens{nullptr};  // weight [V,D] base dtype
  torch::nn::ModuleList layers{nullptr};       // LlamaDecoderLayer x num_hidden_layers
  RmsNorm norm{nullptr};                       // weight [D]

  bool gradient_checkpointing = false;

  // The entries of `layers`, typed.
  std::vector<LlamaDecoderLayer>& decoder_layers() { return decoder_layers_; }

 private:
  std::vector<LlamaDecoderLayer> decoder_layers_;
  RotaryEmbedding rotary_;
  torch::Dtype activation_dtype_;
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  // Builds the architecture with uninitialised base weights (LoadPretrained / CreateRandom
  // fill them), LoRA A Kaiming-uniform and B zeros on the targeted projections when `lora` is
  // not null. Throws TrainError for invalid LoRA options.
  LlamaForCausalLMImpl(const LlamaConfig& config, const LoraOptions* lora,
                       const ModelOptions& options);

  // input_ids [B,T] int64 -> logits [B,T,V] fp32.
  torch::Tensor forward(const torch::Tensor& input_ids);
  // input_ids [B,T] int64 -> the final normed hidden states [B,T,D] in the activation dtype:
  // forward() without
  // the lm_head, for a loss that never holds all logits (recipe/causal_lm_loss.h).
  torch::Tensor Hidden(const torch::Tensor& input_ids);
  // The lm_head weight [V,D] in the base dtype: the embedding matrix when tied.
  torch::Tensor LmHeadWeight();

  // LoRA parameters with Hugging Face names ("model.layers.0.self_attn.q_proj.lora_A.weight"),
  // in module order (layer by layer; q,k,v,o,gate,up,down; A before B): stable across runs.
  std::vector<std::pair<std::string, torch::Tensor>> NamedLoraParameters();
  // What the optimizer updates: the LoRA parameters, or every base weight with train_base.
  std::vector<torch::Tensor> TrainableParameters();
  // Every weight of the model, base and LoRA, counted as values: a quantized projection counts
  // its out x in values (its "weight" parameter is empty, its packed bytes are buffers).
  int64_t ParameterCount();
  // The Hugging Face checkpoint tensors (no LoRA; lm_head.weight only when untied), in module
  // order. With merge_lora, projections carrying an unmerged adapter contribute W + (B A) *
  // scale (fp32, computed on the fly: the model is not changed). A quantized projection
  // contributes its dequantized W (fp32; plus the delta with merge_lora), so that a merged model
  // of a QLoRA run is what PEFT's merge of a QLoRA adapter gives.
  std::vector<std::pair<std::string, torch::Tensor>> NamedBaseWeights(bool merge_lora);

  const LlamaConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  // The adapter's options, or nullopt without LoRA.
  const std::optional<LoraOptions>& lora_options() const { return lora_; }

  void SetGradientCheckpointing(bool enabled);
  // Selects the attention core in every layer (tests compare kPlain with kFused).
  void SetAttentionKernel(AttentionKernel kernel);
  // Folds every adapter into its base weight (see LoraLinearImpl::Merge).
  void MergeLora();
  // Applies options().quantize_base to every decoder projection (LoraLinearImpl::QuantizeBase);
  // nothing for kNone. The loaders call it once the weights hold their values.
  void QuantizeBaseWeights();
  // The decoder layers' projections ("model.layers.0.self_attn.q_proj", ...), in module order:
  // what quantize_base quantizes.
  std::vector<std::pair<std::string, LoraLinearImpl*>> DecoderProjections();
  // The next inputs are rows [offset, ...) of a batch of `batch_rows` (data parallel: every
  // LoRA dropout keeps those rows of a mask drawn for the whole batch; LoraLinearImpl).
  void SetDropoutRows(int64_t offset, int64_t batch_rows);

  LlamaModel model{nullptr};
  LoraLinear lm_head{nullptr};  // [V,D]; null when tie_word_embeddings

 private:
  LlamaConfig config_;
  ModelOptions options_;
  std::optional<LoraOptions> lora_;
};
TORCH_MODULE(LlamaForCausalLM);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_LLAMA_MODEL_H_
