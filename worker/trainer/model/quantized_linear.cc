// Shape legend: in / out the projection's features; "..." any leading dims (B,T in the model).
#include "worker/trainer/model/quantized_linear.h"

#include <c10/core/DeviceGuard.h>
#include <torch/torch.h>

#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "lm/trainer_error.h"
#include "worker/trainer/model/lora_linear.h"
#if TUNELEDGER_WITH_CUDA
#include "worker/trainer/model/cuda_stream.h"
#include "worker/trainer/quant/dequant_cuda.h"
#endif

namespace tuneledger::train {
namespace {

using quant::BaseQuantization;

template <typename T>
torch::Tensor CopyToTensor(const std::vector<T>& values, torch::Dtype dtype) {
  torch::Tensor tensor = torch::empty({static_cast<int64_t>(values.size())}, torch::dtype(dtype));
  if (!values.empty()) std::memcpy(tensor.data_ptr(), values.data(), values.size() * sizeof(T));
  return tensor;
}

// x W~^T with W~ made in the forward and made again in the backward, so that autograd keeps
// the packed weight only. (Every input is a defined tensor: autograd refuses undefined ones, so
// the bias is added outside.)
class QuantizedLinearFunction : public torch::autograd::Function<QuantizedLinearFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& data, const torch::Tensor& scales,
                               const QuantizedWeight& layout, torch::Dtype dtype) {
    // Autograd keeps tensors only; an NF4-DQ weight's absmax_scales go with them (undefined
    // for the other schemes).
    ctx->save_for_backward({data, scales, layout.absmax_scales});
    ctx->saved_data["absmax_offset"] = static_cast<double>(layout.absmax_offset);
    ctx->saved_data["scheme"] = static_cast<int64_t>(layout.scheme);
    ctx->saved_data["rows"] = layout.rows;
    ctx->saved_data["cols"] = layout.cols;
    ctx->saved_data["block_size"] = static_cast<int64_t>(layout.block_size);
    ctx->saved_data["dtype"] = static_cast<int64_t>(dtype);
    torch::Tensor weight = DequantizeWeight(layout, dtype);  // [out,in] dtype
    return BaseLinear(x, weight, torch::Tensor());           // [...,out] x's dtype
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    QuantizedWeight layout;
    layout.scheme = static_cast<BaseQuantization>(ctx->saved_data["scheme"].toInt());
    layout.rows = ctx->saved_data["rows"].toInt();
    layout.cols = ctx->saved_data["cols"].toInt();
    layout.block_size = static_cast<int>(ctx->saved_data["block_size"].toInt());
    layout.data = saved[0];
    layout.scales = saved[1];
    layout.absmax_scales = saved[2];
    layout.absmax_offset = static_cast<float>(ctx->saved_data["absmax_offset"].toDouble());
    const auto dtype = static_cast<torch::Dtype>(ctx->saved_data["dtype"].toInt());
    torch::Tensor weight = DequantizeWeight(layout, dtype);      // [out,in]
    torch::Tensor grad_x = BaseMatmul(grad_outputs[0], weight);  // [...,in] in x's dtype
    return {grad_x, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

#if TUNELEDGER_WITH_CUDA
quant::DequantOutput OutputKind(torch::Dtype dtype) {
  if (dtype == torch::kFloat32) return quant::DequantOutput::kFloat32;
  if (dtype == torch::kBFloat16) return quant::DequantOutput::kBFloat16;
  if (dtype == torch::kFloat16) return quant::DequantOutput::kFloat16;
  throw TrainError(std::string("CUDA dequantization: output dtype must be float32, bfloat16 or "
                               "float16, got ") +
                   c10::toString(dtype));
}
#endif

}  // namespace

int64_t QuantizedWeight::bytes() const {
  if (!defined()) return 0;
  int64_t total = data.numel() * static_cast<int64_t>(data.element_size()) +
                  scales.numel() * static_cast<int64_t>(scales.element_size());
  if (absmax_scales.defined()) {
    total += absmax_scales.numel() * static_cast<int64_t>(absmax_scales.element_size()) +
             static_cast<int64_t>(sizeof(absmax_offset));
  }
  return total;
}

QuantizedWeight QuantizedWeight::to(const torch::Device& device) const {
  QuantizedWeight moved = *this;
  if (data.defined()) moved.data = data.to(device);
  if (scales.defined()) moved.scales = scales.to(device);
  if (absmax_scales.defined()) moved.absmax_scales = absmax_scales.to(device);
  return moved;
}

QuantizedWeight QuantizeWeight(const torch::Tensor& weight, BaseQuantization scheme) {
  if (scheme == BaseQuantization::kNone) {
    throw TrainError("QuantizeWeight: no quantization scheme given");
  }
  if (weight.dim() != 2) {
    throw TrainError("QuantizeWeight: the weight must be [out,in], got " +
                     std::to_string(weight.dim()) + " dims");
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor values = weight.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const std::span<const float> flat(values.data_ptr<float>(), static_cast<size_t>(values.numel()));
  QuantizedWeight result;
  result.scheme = scheme;
  result.rows = weight.size(0);
  result.cols = weight.size(1);
  if (scheme == BaseQuantization::kNf4) {
    const quant::Nf4Tensor nf4 = quant::QuantizeNf4(flat, result.block_size);
    result.data = CopyToTensor(nf4.packed, torch::kUInt8);      // [ceil(out*in/2)]
    result.scales = CopyToTensor(nf4.absmax, torch::kFloat32);  // [ceil(out*in/64)]
  } else if (scheme == BaseQuantization::kNf4DoubleQuant) {
    const quant::Nf4Tensor nf4 = quant::QuantizeNf4(flat, result.block_size, /*double_quant=*/true);
    const quant::QuantizedAbsmax& codes = *nf4.double_quant;
    result.data = CopyToTensor(nf4.packed, torch::kUInt8);               // [ceil(out*in/2)]
    result.scales = CopyToTensor(codes.values, torch::kInt8);            // [n_blocks]
    result.absmax_scales = CopyToTensor(codes.scales, torch::kFloat32);  // [ceil(n_blocks/256)]
    result.absmax_offset = codes.offset;
  } else {
    const quant::Int8Tensor int8 = quant::QuantizeInt8Rows(flat, result.rows, result.cols);
    result.data = CopyToTensor(int8.values, torch::kInt8).view({result.rows, result.cols});
    result.scales = CopyToTensor(int8.scales, torch::kFloat32);  // [out]
  }
  return result.to(weight.device());
}

// An NF4 weight's absmax per block [n_blocks] fp32: stored, or made from the NF4-DQ codes as
// block_quant's DequantizeAbsmax does (the product rounded, then the sum, then max with 0).
torch::Tensor BlockAbsmax(const QuantizedWeight& weight) {
  if (weight.scheme == BaseQuantization::kNf4) return weight.scales;
  const int64_t blocks = weight.scales.numel();
  const torch::Tensor scale = weight.absmax_scales.repeat_interleave(quant::kDoubleQuantBlockSize)
                                  .narrow(0, 0, blocks);  // [n_blocks]
  return (weight.scales.to(torch::kFloat32) * scale).add(weight.absmax_offset).clamp_min(0);
}

torch::Tensor DequantizeWeightReference(const QuantizedWeight& weight, torch::Dtype dtype) {
  torch::NoGradGuard no_grad;
  if (weight.scheme == BaseQuantization::kInt8) {
    // One fp32 product per value, as DequantizeInt8Rows.
    return (weight.data.to(torch::kFloat32) * weight.scales.unsqueeze(1)).to(dtype);  // [out,in]
  }
  if (weight.scheme != BaseQuantization::kNf4 &&
      weight.scheme != BaseQuantization::kNf4DoubleQuant) {
    throw TrainError("DequantizeWeightReference: the weight is not quantized");
  }
  const int64_t numel = weight.rows * weight.cols;
  const torch::Tensor codebook =
      torch::tensor(std::vector<float>(quant::kNf4Codebook.begin(), quant::kNf4Codebook.end()),
                    torch::dtype(torch::kFloat32))
          .to(weight.data.device());                                      // [16]
  const torch::Tensor high = torch::bitwise_right_shift(weight.data, 4);  // [bytes] uint8
  const torch::Tensor low = torch::bitwise_and(weight.data, 0x0F);        // [bytes] uint8
  const torch::Tensor index =
      torch::stack({high, low}, 1).reshape({-1}).narrow(0, 0, numel).to(torch::kInt64);  // [n]
  const torch::Tensor absmax =
      BlockAbsmax(weight).repeat_interleave(weight.block_size).narrow(0, 0, numel);  // [n]
  // One fp32 product per value, as DequantizeNf4.
  return (codebook.index_select(0, index) * absmax).view({weight.rows, weight.cols}).to(dtype);
}

#if TUNELEDGER_WITH_CUDA
torch::Tensor DequantizeWeightCuda(const QuantizedWeight& weight, torch::Dtype dtype) {
  if (!weight.data.is_cuda() || !weight.scales.is_cuda()) {
    throw TrainError("DequantizeWeightCuda: the quantized weight is not on a CUDA device");
  }
  torch::NoGradGuard no_grad;
  const c10::DeviceGuard guard(weight.data.device());
  const torch::Tensor data = weight.data.contiguous();
  const torch::Tensor scales = weight.scales.contiguous();
  torch::Tensor out = torch::empty({weight.rows, weight.cols}, data.options().dtype(dtype));
  // Ordered with the GEMM after it.
  void* stream = CurrentCudaStream(data.device());
  const char* error = nullptr;
  if (weight.scheme == BaseQuantization::kNf4) {
    error = quant::LaunchDequantizeNf4(data.data_ptr<uint8_t>(), scales.data_ptr<float>(),
                                       weight.rows * weight.cols, weight.block_size, out.data_ptr(),
                                       OutputKind(dtype), stream);
  } else if (weight.scheme == BaseQuantization::kNf4DoubleQuant) {
    const torch::Tensor absmax_scales = weight.absmax_scales.contiguous();
    error = quant::LaunchDequantizeNf4DoubleQuant(
        data.data_ptr<uint8_t>(), scales.data_ptr<int8_t>(), absmax_scales.data_ptr<float>(),
        weight.absmax_offset, quant::kDoubleQuantBlockSize, weight.rows * weight.cols,
        weight.block_size, out.data_ptr(), OutputKind(dtype), stream);
  } else if (weight.scheme == BaseQuantization::kInt8) {
    error = quant::LaunchDequantizeInt8Rows(data.data_ptr<int8_t>(), scales.data_ptr<float>(),
                                            weight.rows, weight.cols, out.data_ptr(),
                                            OutputKind(dtype), stream);
  } else {
    throw TrainError("DequantizeWeightCuda: the weight is not quantized");
  }
  if (error != nullptr) throw TrainError(std::string("CUDA dequantization: ") + error);
  return out;  // [out,in]
}
#endif

torch::Tensor DequantizeWeight(const QuantizedWeight& weight, torch::Dtype dtype) {
#if TUNELEDGER_WITH_CUDA
  if (weight.data.is_cuda()) return DequantizeWeightCuda(weight, dtype);
#endif
  return DequantizeWeightReference(weight, dtype);
}

torch::Tensor QuantizedLinear(const torch::Tensor& x, const QuantizedWeight& weight,
                              const torch::Tensor& bias, torch::Dtype compute_dtype) {
  // Under fp32 activations on CPU, W~ is made in fp32 directly (BaseLinear would upcast a
  // low-precision one anyway).
  const bool upcast = !x.is_cuda() && x.scalar_type() == torch::kFloat32;
  const torch::Dtype dtype = upcast ? torch::kFloat32 : compute_dtype;
  torch::Tensor y =
      QuantizedLinearFunction::apply(x, weight.data, weight.scales, weight, dtype);  // [...,out]
  return bias.defined() ? y + bias.to(y.scalar_type()) : y;                          // [...,out]
}

}  // namespace tuneledger::train
