// LoraLinear: a frozen linear projection with an optional low-rank adapter (LoRA).
//
// Shape legend: B batch, T tokens, in / out the projection's features, r LoRA rank.
//
//   y = x W^T + b  +  (dropout(x) A^T B^T) * (alpha / r)
//
//   W [out,in] frozen, in the base dtype (fp32, or bf16/fp16 to halve memory); b [out] optional
//   A [r,in]   fp32, Kaiming-uniform(a = sqrt(5)) like PEFT and nn.Linear
//   B [out,r]  fp32, zeros, so a fresh adapter leaves the model unchanged
//
// Module names follow PEFT (minus its ".default" adapter name): the parameters are "weight",
// "bias", "lora_A.weight", "lora_B.weight", so the model's named_parameters() are already the
// Hugging Face / PEFT names.
//
// Activations are fp32, or bf16/fp16 end to end (ModelOptions::activation_dtype, the fast path
// on CUDA); the output has the input's dtype. Base-weight paths (BaseLinear): a weight in the
// input's dtype uses one linear. fp32 inputs with low-precision weights run the GEMM in the
// weight's dtype on CUDA (LowPrecisionLinear) and upcast the weight to fp32 on CPU
// (ReferenceLinear, the plain reference; bf16 GEMM on CPU is ~30x slower than fp32); a test
// checks that both agree. The LoRA branch runs in the input's dtype with A and B (fp32
// parameters, so their gradients and optimizer state are fp32) cast to it per forward; with
// dropout on, on CUDA the down projection keeps x and a bool mask for its backward
// (LoraDownWithDropout), not the dropped input and a mask in x's dtype; the CPU keeps the plain
// multiply by a mask, which is faster there.
//
// Quantized base (QLoRA, QuantizeBase()): W is stored packed (quantized_linear.h: NF4 or INT8)
// and dequantized to the base dtype inside each forward and backward (QuantizedLinear); the
// "weight" parameter stays registered but empty ([0]), so parameter names do not change, and the
// packed tensors are buffers "weight_quantized", "weight_scales" and, for NF4-DQ,
// "weight_absmax_scales" (they move with .to()).
// MergedWeight() is the dequantized W + (B A) * scale; Merge() folds that into a full W again
// (the module is then unquantized), as PEFT merges a QLoRA adapter.
//
// Thread safety: none (a torch::nn::Module); one training thread owns the model.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_LORA_LINEAR_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_LORA_LINEAR_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "worker/trainer/model/quantized_linear.h"
#include "worker/trainer/quant/block_quant.h"

namespace tuneledger::train {

struct LoraOptions {
  int r = 16;
  double alpha = 32.0;
  double dropout = 0.1;
  // Hugging Face projection names: any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
  // down_proj.
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
};

// Throws TrainError naming the field (r, alpha, dropout, target_modules) when out of range.
void ValidateLoraOptions(const LoraOptions& options);
// True when `module_name` (e.g. "q_proj") is one of options.target_modules.
bool IsLoraTarget(const LoraOptions& options, const std::string& module_name);

// y = x W^T + b computed with W upcast to fp32. x [..., in] fp32 -> [..., out] fp32.
torch::Tensor ReferenceLinear(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias /* undefined: none */);
// y = x W^T + b computed in W's dtype (x cast down), result cast back to fp32.
torch::Tensor LowPrecisionLinear(const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias /* undefined: none */);
// The policy for every frozen projection (also a tied lm_head): x [..., in] -> [..., out] in
// x's dtype. A weight in x's dtype: one linear; fp32 x with a low-precision weight:
// LowPrecisionLinear on CUDA, ReferenceLinear on CPU; a low-precision x with a weight of another
// dtype: the weight cast to x's dtype.
torch::Tensor BaseLinear(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias /* undefined: none */);
// g W by the same policy, BaseLinear's gradient with respect to x: g [..., out], weight
// [out,in] -> [..., in] in g's dtype.
torch::Tensor BaseMatmul(const torch::Tensor& g, const torch::Tensor& weight);

// dropout(x) A^T, x [...,in], a [r,in] fp32 (LoRA A), dropped [...,in] bool (true: dropped),
// inv_keep 1 / (1 - p) -> [...,r] in x's dtype, keeping x, A and the bool mask for the backward
// (which makes the dropped input again): LoraLinear's path on CUDA.
torch::Tensor LoraDownWithDropout(const torch::Tensor& x, const torch::Tensor& a,
                                  const torch::Tensor& dropped, double inv_keep);

// The keep mask of LoRA dropout for rows [first_row, first_row + shape[0]) of a batch ([shape]
// of 0 and 1 in options' dtype, each 1 with probability `keep`; a 1-D shape is one row). Row i
// is drawn from its own generator, seeded from the state of options' device's default generator
// and from first_row + i, so a rank holding some rows of a batch draws, for those rows, what one
// process holding the whole batch draws (recipe/data_parallel.h), and draws no other rows.
// Advances the default generator by one one-value draw, whatever the shape, so the next call's
// masks are new and every rank's generator stays in step. Reads the generator's state on the
// host: no device synchronisation.
torch::Tensor DrawDropoutKeep(at::IntArrayRef shape, const torch::TensorOptions& options,
                              double keep, int64_t first_row);

class LoraLinearImpl : public torch::nn::Module {
 public:
  // A frozen [out,in] projection in `base_dtype` (weights uninitialised: the loader or
  // CreateRandom fills them). `lora` null or not targeting this projection: no adapter.
  // LoRA A is initialised from torch's default generator.
  LoraLinearImpl(int64_t in_features, int64_t out_features, bool bias, torch::Dtype base_dtype,
                 const LoraOptions* lora);

  // x [..., in] fp32, bf16 or fp16 -> [..., out] in x's dtype.
  torch::Tensor forward(const torch::Tensor& x);

  // Folds (B A) * scale into W (in W's dtype) and stops applying the adapter; the LoRA
  // parameters stay registered (unchanged) so their names remain visible.
  void Merge();
  // W + (B A) * scale in fp32 without changing the module: [out,in].
  torch::Tensor MergedWeight() const;

  // Data parallel (worker/trainer/recipe/data_parallel.h): the next inputs are rows
  // [offset, offset + x.size(0)) of a batch of `batch_rows`. Dropout draws those rows' masks
  // (DrawDropoutKeep), so that N ranks draw exactly what one process would. batch_rows 0 (the
  // default): the input is the whole batch.
  void SetDropoutRows(int64_t offset, int64_t batch_rows);

  // Quantizes W with `scheme` (block_quant's reference) and frees it: from then on the forward
  // dequantizes it to the base dtype. Call once the weight holds its values. TrainError when
  // already quantized or merged, for a trainable W, or for kNone.
  void QuantizeBase(quant::BaseQuantization scheme);
  bool quantized() const { return quantized_weight_.defined(); }
  // The packed W (scheme kNone unless quantized).
  const QuantizedWeight& quantized_weight() const { return quantized_weight_; }

  bool has_lora() const { return !lora_A.is_empty(); }
  bool merged() const { return merged_; }
  double scale() const { return scale_; }

  torch::Tensor weight;               // [out,in] base dtype, frozen unless training the base
  torch::Tensor bias;                 // [out] base dtype, or undefined
  torch::nn::Linear lora_A{nullptr};  // weight [r,in] fp32
  torch::nn::Linear lora_B{nullptr};  // weight [out,r] fp32

 private:
  double scale_ = 0.0;
  // The keep mask of dropout(x) = x * keep / (1 - p): [...,in] of 0 and 1 in x's dtype, drawn
  // by DrawDropoutKeep for x's rows of the batch (SetDropoutRows).
  torch::Tensor DropoutKeep(const torch::Tensor& x) const;

  double dropout_ = 0.0;
  int64_t dropout_row_offset_ = 0;
  int64_t dropout_batch_rows_ = 0;
  bool merged_ = false;
  torch::Dtype base_dtype_;
  QuantizedWeight quantized_weight_;  // data and scales are the registered buffers
};
TORCH_MODULE(LoraLinear);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_LORA_LINEAR_H_
