// Shape legend: in / out the projection's features, r LoRA rank; "..." any leading dims
// (B,T in the model).
#include "worker/trainer/model/lora_linear.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "lm/trainer_error.h"
#include "tuneledger/v1/job_spec_contract.h"

namespace tuneledger::train {

void ValidateLoraOptions(const LoraOptions& options) {
  if (options.r <= 0 || options.r > spec::kLoraRMax) {
    throw TrainError("lora r: must be in [1, " + std::to_string(spec::kLoraRMax) + "], got " +
                     std::to_string(options.r));
  }
  if (!(options.alpha > 0) || !std::isfinite(options.alpha)) {
    throw TrainError("lora alpha: must be > 0, got " + std::to_string(options.alpha));
  }
  if (!(options.dropout >= 0 && options.dropout < 1)) {
    throw TrainError("lora dropout: must be in [0, 1), got " + std::to_string(options.dropout));
  }
  if (options.target_modules.empty()) throw TrainError("lora target_modules: must not be empty");
  for (const std::string& name : options.target_modules) {
    bool known = false;
    for (std::string_view target : spec::kAllTargetModules) known |= (name == target);
    if (!known) {
      throw TrainError("lora target_modules: unknown module '" + name +
                       "' (known: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
    }
  }
}

bool IsLoraTarget(const LoraOptions& options, const std::string& module_name) {
  for (const std::string& name : options.target_modules) {
    if (name == module_name) return true;
  }
  return false;
}

torch::Tensor ReferenceLinear(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias) {
  torch::Tensor weight32 = weight.to(torch::kFloat32);                      // [out,in]
  torch::Tensor bias32 = bias.defined() ? bias.to(torch::kFloat32) : bias;  // [out]
  return torch::linear(x, weight32, bias32);                                // [...,out]
}

torch::Tensor LowPrecisionLinear(const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias) {
  torch::Tensor y = torch::linear(x.to(weight.scalar_type()), weight, bias);  // [...,out]
  return y.to(torch::kFloat32);
}

LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features, bool with_bias,
                               torch::Dtype base_dtype, const LoraOptions* lora)
    : base_dtype_(base_dtype) {
  weight = register_parameter(
      "weight", torch::empty({out_features, in_features}, torch::dtype(base_dtype)),  // [out,in]
      /*requires_grad=*/false);
  if (with_bias) {
    bias = register_parameter("bias", torch::empty({out_features}, torch::dtype(base_dtype)),
                              /*requires_grad=*/false);  // [out]
  }
  if (lora == nullptr) return;
  const int64_t r = lora->r;
  lora_A = register_module("lora_A",
                           torch::nn::Linear(torch::nn::LinearOptions(in_features, r).bias(false)));
  lora_B = register_module(
      "lora_B", torch::nn::Linear(torch::nn::LinearOptions(r, out_features).bias(false)));
  torch::NoGradGuard no_grad;
  // PEFT's init: A like nn.Linear (Kaiming-uniform, a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))),
  // B zeros so that the adapter starts as the identity.
  torch::nn::init::kaiming_uniform_(lora_A->weight, std::sqrt(5.0));  // [r,in]
  lora_B->weight.zero_();                                             // [out,r]
  scale_ = lora->alpha / lora->r;
  dropout_ = lora->dropout;
}

torch::Tensor BaseLinear(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias) {
  const torch::Dtype dtype = x.scalar_type();
  if (weight.scalar_type() == dtype) return torch::linear(x, weight, bias);
  if (dtype == torch::kFloat32) {
    // Low-precision base weights under fp32 activations: GEMM in that dtype where it is fast
    // (CUDA); on CPU upcast the weight, as bf16/fp16 GEMM there is far slower than fp32.
    return x.is_cuda() ? LowPrecisionLinear(x, weight, bias) : ReferenceLinear(x, weight, bias);
  }
  return torch::linear(x, weight.to(dtype), bias.defined() ? bias.to(dtype) : bias);
}

torch::Tensor BaseMatmul(const torch::Tensor& g, const torch::Tensor& weight) {
  const torch::Dtype dtype = g.scalar_type();
  if (weight.scalar_type() == dtype) return torch::matmul(g, weight);
  if (dtype == torch::kFloat32) {
    return g.is_cuda() ? torch::matmul(g.to(weight.scalar_type()), weight).to(torch::kFloat32)
                       : torch::matmul(g, weight.to(torch::kFloat32));
  }
  return torch::matmul(g, weight.to(dtype));
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = quantized() ? QuantizedLinear(x, quantized_weight_, bias, base_dtype_)
                                : BaseLinear(x, weight, bias);  // [...,out]
  if (!has_lora() || merged_) return y;
  // In x's dtype; .to() is a no-op for fp32 activations.
  const torch::Dtype dtype = x.scalar_type();
  torch::Tensor lora_in = (dropout_ > 0 && is_training()) ? Dropout(x) : x;     // [...,in]
  torch::Tensor down = torch::linear(lora_in, lora_A->weight.to(dtype));        // [...,r]
  return torch::add(y, torch::linear(down, lora_B->weight.to(dtype)), scale_);  // [...,out]
}

void LoraLinearImpl::SetDropoutRows(int64_t offset, int64_t batch_rows) {
  if (offset < 0 || batch_rows < 0 || offset > batch_rows) {
    throw TrainError("LoRA dropout rows: offset " + std::to_string(offset) +
                     " outside a batch of " + std::to_string(batch_rows));
  }
  dropout_row_offset_ = offset;
  dropout_batch_rows_ = batch_rows;
}

torch::Tensor LoraLinearImpl::Dropout(const torch::Tensor& x) const {
  std::vector<int64_t> shape = x.sizes().vec();  // [B,...,in]
  const bool sharded = dropout_batch_rows_ > 0 && x.dim() > 1;
  if (sharded) shape[0] = dropout_batch_rows_;
  torch::Tensor keep = torch::empty(shape, x.options()).bernoulli_(1.0 - dropout_);
  keep.div_(1.0 - dropout_);
  if (sharded) {
    if (dropout_row_offset_ + x.size(0) > dropout_batch_rows_) {
      throw TrainError("LoRA dropout rows: " + std::to_string(x.size(0)) + " rows at offset " +
                       std::to_string(dropout_row_offset_) + " outside a batch of " +
                       std::to_string(dropout_batch_rows_));
    }
    keep = keep.narrow(0, dropout_row_offset_, x.size(0));
  }
  return x * keep;
}

torch::Tensor LoraLinearImpl::MergedWeight() const {
  torch::NoGradGuard no_grad;
  torch::Tensor merged = quantized() ? DequantizeWeight(quantized_weight_, torch::kFloat32)
                                     : weight.to(torch::kFloat32);  // [out,in]
  if (has_lora() && !merged_) {
    merged = merged + torch::matmul(lora_B->weight, lora_A->weight) * scale_;  // [out,in]
  }
  return merged;
}

void LoraLinearImpl::Merge() {
  if (!has_lora() || merged_) return;
  torch::NoGradGuard no_grad;
  if (quantized()) {
    // The merged weight is the dequantized W plus the delta, held unquantized from now on.
    weight.set_data(DequantizeWeight(quantized_weight_, base_dtype_));  // [out,in]
    quantized_weight_.data.set_data(torch::empty({0}, quantized_weight_.data.options()));
    quantized_weight_.scales.set_data(torch::empty({0}, quantized_weight_.scales.options()));
    quantized_weight_ = QuantizedWeight();
  }
  torch::Tensor delta = torch::matmul(lora_B->weight, lora_A->weight) * scale_;  // [out,in]
  weight.add_(delta.to(weight.scalar_type()));
  merged_ = true;
}

void LoraLinearImpl::QuantizeBase(quant::BaseQuantization scheme) {
  if (quantized()) throw TrainError("QuantizeBase: the base weight is quantized already");
  if (merged_) throw TrainError("QuantizeBase: the adapter is merged into the base weight");
  if (weight.requires_grad()) throw TrainError("QuantizeBase: the base weight is trainable");
  torch::NoGradGuard no_grad;
  QuantizedWeight packed = QuantizeWeight(weight, scheme);
  // Buffers, so that .to(device) moves them; `packed` keeps the same tensors.
  packed.data = register_buffer("weight_quantized", packed.data);
  packed.scales = register_buffer("weight_scales", packed.scales);
  quantized_weight_ = std::move(packed);
  weight.set_data(torch::empty({0}, weight.options()));  // [0]: the full W is freed
}

}  // namespace tuneledger::train
