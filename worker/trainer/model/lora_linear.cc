// Shape legend: in / out the projection's features, r LoRA rank; "..." any leading dims
// (B,T in the model).
#include "worker/trainer/model/lora_linear.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/split_mix64.h"
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

namespace {

// dropout(x) A^T with the dropout mask kept as bool: x [...,in], A [r,in] fp32, dropped [...,in]
// bool (true: the value is dropped), inv_keep = 1 / (1 - p) -> [...,r] in x's dtype. Saves x
// (shared by the projections that read it), A and the bool mask; the dropped input is made again in
// the backward. (Autograd on x * mask would keep the mask in x's dtype and the dropped input
// besides: 4 or 8 bytes per value instead of 1.)
class DroppedDownProjection : public torch::autograd::Function<DroppedDownProjection> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& a, const torch::Tensor& dropped,
                               double inv_keep) {
    ctx->save_for_backward({x, a, dropped});
    ctx->saved_data["inv_keep"] = inv_keep;
    // 1 / (1 - p) scales the r-wide product, not the in-wide input.
    return torch::linear(x.masked_fill(dropped, 0), a.to(x.scalar_type())).mul_(inv_keep);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];        // [...,in]
    const torch::Tensor& a = saved[1];        // [r,in] fp32
    const torch::Tensor& dropped = saved[2];  // [...,in] bool
    const double inv_keep = ctx->saved_data["inv_keep"].toDouble();
    const torch::Tensor g = grad_outputs[0].mul(inv_keep);  // [...,r]
    torch::Tensor grad_x;
    if (ctx->needs_input_grad(0))
      grad_x = torch::matmul(g, a.to(x.scalar_type())).masked_fill_(dropped, 0);
    torch::Tensor grad_a;
    if (ctx->needs_input_grad(1)) {
      const int64_t r = a.size(0), in = a.size(1);
      grad_a = torch::matmul(g.reshape({-1, r}).t(), x.masked_fill(dropped, 0).reshape({-1, in}))
                   .to(torch::kFloat32);  // [r,in]
    }
    return {grad_x, grad_a, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor LoraDownWithDropout(const torch::Tensor& x, const torch::Tensor& a,
                                  const torch::Tensor& dropped, double inv_keep) {
  return DroppedDownProjection::apply(x, a, dropped, inv_keep);  // [...,r]
}

namespace {

// FNV-1a over `bytes`, then SplitMix64's finaliser: a well-mixed 64-bit digest.
uint64_t Digest(const uint8_t* bytes, int64_t size) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int64_t i = 0; i < size; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  return SplitMix64Mix(h);
}

}  // namespace

torch::Tensor DrawDropoutKeep(at::IntArrayRef shape, const torch::TensorOptions& options,
                              double keep, int64_t first_row) {
  at::Generator generator = at::globalContext().defaultGenerator(options.device());
  uint64_t call_seed = 0;
  at::Generator row_generator;
  {
    std::lock_guard<std::mutex> lock(generator.mutex());
    // A CPU tensor of the state (the Mersenne Twister's words, or CUDA's Philox seed and offset).
    const torch::Tensor state = generator.get_state().contiguous();
    call_seed = Digest(state.data_ptr<uint8_t>(), state.numel());
    row_generator = generator.clone();
  }
  // Every call moves the shared generator on by the same one-value draw.
  torch::empty({1}, options).bernoulli_(0.5);
  torch::Tensor mask = torch::empty(shape, options);  // [rows,...] or [in]
  const int64_t rows = shape.size() > 1 ? shape[0] : 1;
  for (int64_t i = 0; i < rows; ++i) {
    // A kernel reads its generator's seed and offset when it is launched, so one generator
    // re-seeded per row serves every row.
    row_generator.set_current_seed(
        SplitMix64Mix(call_seed ^ SplitMix64Mix(static_cast<uint64_t>(first_row + i))));
    (shape.size() > 1 ? mask.select(0, i) : mask).bernoulli_(keep, row_generator);
  }
  return mask;
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = quantized() ? QuantizedLinear(x, quantized_weight_, bias, base_dtype_)
                                : BaseLinear(x, weight, bias);  // [...,out]
  if (!has_lora() || merged_) return y;
  // In x's dtype; .to() is a no-op for fp32 activations.
  const torch::Dtype dtype = x.scalar_type();
  torch::Tensor down;  // [...,r]
  if (!(dropout_ > 0 && is_training())) {
    down = torch::linear(x, lora_A->weight.to(dtype));
  } else if (x.is_cuda()) {
    down = LoraDownWithDropout(x, lora_A->weight, DropoutKeep(x).eq(0), 1.0 / (1.0 - dropout_));
  } else {
    // On the CPU bool-masked arithmetic is several times slower than a multiply by a mask in
    // x's dtype, and memory is not what limits a CPU run.
    down = torch::linear(x * DropoutKeep(x).div_(1.0 - dropout_), lora_A->weight.to(dtype));
  }
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

torch::Tensor LoraLinearImpl::DropoutKeep(const torch::Tensor& x) const {
  const bool sharded = dropout_batch_rows_ > 0 && x.dim() > 1;
  if (sharded && dropout_row_offset_ + x.size(0) > dropout_batch_rows_) {
    throw TrainError("LoRA dropout rows: " + std::to_string(x.size(0)) + " rows at offset " +
                     std::to_string(dropout_row_offset_) + " outside a batch of " +
                     std::to_string(dropout_batch_rows_));
  }
  // In x's dtype; a checkpointed layer's replay restores the default generator, so it draws the
  // same masks again.
  return DrawDropoutKeep(x.sizes(), x.options(), 1.0 - dropout_,
                         sharded ? dropout_row_offset_ : 0);  // [...,in]
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
    if (quantized_weight_.absmax_scales.defined()) {
      quantized_weight_.absmax_scales.set_data(
          torch::empty({0}, quantized_weight_.absmax_scales.options()));
    }
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
  if (packed.absmax_scales.defined()) {
    packed.absmax_scales = register_buffer("weight_absmax_scales", packed.absmax_scales);
  }
  quantized_weight_ = std::move(packed);
  weight.set_data(torch::empty({0}, weight.options()));  // [0]: the full W is freed
}

}  // namespace tuneledger::train
