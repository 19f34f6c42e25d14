// Shape legend: D hidden, F intermediate, B batch, H heads, T tokens, Dh head dim; "..." any
// leading dims.
#include "worker/trainer/model/fused_ops.h"

#include <c10/core/DeviceGuard.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "lm/trainer_error.h"
#include "worker/trainer/model/rotary_embedding.h"
#if TUNELEDGER_WITH_CUDA
#include "worker/trainer/kernels/fused_cuda.h"
#include "worker/trainer/model/cuda_stream.h"
#endif

namespace tuneledger::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#if TUNELEDGER_WITH_CUDA
// The kernels' storage type for a CUDA tensor of a float dtype; false for others (and the CPU).
bool KernelStorage(const torch::Tensor& t, kernels::Storage* storage) {
  if (!t.is_cuda()) return false;
  switch (t.scalar_type()) {
    case torch::kFloat32:
      *storage = kernels::Storage::kFloat32;
      return true;
    case torch::kBFloat16:
      *storage = kernels::Storage::kBFloat16;
      return true;
    case torch::kFloat16:
      *storage = kernels::Storage::kFloat16;
      return true;
    default:
      return false;
  }
}

void Check(const char* error, const char* what) {
  if (error != nullptr) throw TrainError(std::string("CUDA ") + what + ": " + error);
}
#endif

// The RMSNorm formula; *inv_rms (when not null) gets 1/rms [...,1] fp32.
torch::Tensor RmsNormFormula(const torch::Tensor& x, const torch::Tensor& weight, double eps,
                             torch::Tensor* inv_rms) {
  const torch::Dtype dtype = x.scalar_type();
  torch::Tensor x32 = x.to(torch::kFloat32);                                      // [...,D]
  torch::Tensor inv = torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);  // [...,1]
  if (inv_rms != nullptr) *inv_rms = inv;
  // Normalised in fp32, then scaled in x's dtype as Hugging Face does (.to() is a no-op in fp32).
  return weight.to(dtype) * (x32 * inv).to(dtype);  // [...,D]
}

struct RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
  // x [...,D], weight [D] fp32 (frozen) -> [...,D].
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    torch::Tensor y, inv_rms;  // [...,D], [...,1] fp32
#if TUNELEDGER_WITH_CUDA
    kernels::Storage storage;
    if (KernelStorage(x, &storage)) {
      const c10::DeviceGuard guard(x.device());
      const torch::Tensor input = x.contiguous();
      const torch::Tensor w = weight.to(torch::kFloat32).contiguous();
      const int64_t dim = x.size(-1);
      const int64_t rows = dim == 0 ? 0 : input.numel() / dim;
      y = torch::empty_like(input);
      std::vector<int64_t> stats_shape = x.sizes().vec();
      stats_shape.back() = 1;
      inv_rms = torch::empty(stats_shape, input.options().dtype(torch::kFloat32));
      Check(kernels::LaunchRmsNormForward(
                input.data_ptr(), w.data_ptr<float>(), rows, dim, static_cast<float>(eps),
                y.data_ptr(), inv_rms.data_ptr<float>(), storage, CurrentCudaStream(x.device())),
            "RMSNorm forward");
      ctx->save_for_backward({input, w, inv_rms});
      return y;
    }
#endif
    y = RmsNormFormula(x, weight, eps, &inv_rms);
    ctx->save_for_backward({x, weight, inv_rms});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];        // [...,D]
    const torch::Tensor& weight = saved[1];   // [D]
    const torch::Tensor& inv_rms = saved[2];  // [...,1] fp32
    const torch::Tensor grad_y = grad_outputs[0].contiguous();
    torch::Tensor grad_x;
#if TUNELEDGER_WITH_CUDA
    kernels::Storage storage;
    if (KernelStorage(x, &storage)) {
      const c10::DeviceGuard guard(x.device());
      const int64_t dim = x.size(-1);
      grad_x = torch::empty_like(x);
      Check(kernels::LaunchRmsNormBackward(grad_y.data_ptr(), x.data_ptr(),
                                           weight.data_ptr<float>(), inv_rms.data_ptr<float>(),
                                           dim == 0 ? 0 : x.numel() / dim, dim, grad_x.data_ptr(),
                                           storage, CurrentCudaStream(x.device())),
            "RMSNorm backward");
      return {grad_x, torch::Tensor(), torch::Tensor()};
    }
#endif
    // d/dx of n = x inv(x): inv (gn - n mean(gn n)), gn the gradient reaching n (in x's dtype,
    // as the product with the weight rounds it).
    const torch::Dtype dtype = x.scalar_type();
    const torch::Tensor gn = (grad_y * weight.to(dtype)).to(torch::kFloat32);  // [...,D]
    const torch::Tensor normed = x.to(torch::kFloat32) * inv_rms;              // [...,D]
    const torch::Tensor mean_dot = (gn * normed).mean(-1, /*keepdim=*/true);   // [...,1]
    grad_x = (inv_rms * (gn - normed * mean_dot)).to(dtype);                   // [...,D]
    return {grad_x, torch::Tensor(), torch::Tensor()};
  }
};

struct SwiGluFunction : public torch::autograd::Function<SwiGluFunction> {
  // gate, up [...,F] -> [...,F].
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate,
                               const torch::Tensor& up) {
#if TUNELEDGER_WITH_CUDA
    kernels::Storage storage;
    if (KernelStorage(gate, &storage) && up.scalar_type() == gate.scalar_type() &&
        up.sizes() == gate.sizes()) {
      const c10::DeviceGuard guard(gate.device());
      const torch::Tensor g = gate.contiguous(), u = up.contiguous();
      torch::Tensor y = torch::empty_like(g);
      Check(kernels::LaunchSwiGluForward(g.data_ptr(), u.data_ptr(), g.numel(), y.data_ptr(),
                                         storage, CurrentCudaStream(g.device())),
            "SwiGLU forward");
      ctx->save_for_backward({g, u});
      return y;
    }
#endif
    ctx->save_for_backward({gate, up});
    return ReferenceSwiGlu(gate, up);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& gate = saved[0];  // [...,F]
    const torch::Tensor& up = saved[1];    // [...,F]
    const torch::Tensor grad_y = grad_outputs[0].contiguous();
#if TUNELEDGER_WITH_CUDA
    kernels::Storage storage;
    if (KernelStorage(gate, &storage) && gate.is_contiguous() && up.is_contiguous() &&
        grad_y.sizes() == gate.sizes()) {
      const c10::DeviceGuard guard(gate.device());
      torch::Tensor grad_gate = torch::empty_like(gate), grad_up = torch::empty_like(up);
      Check(kernels::LaunchSwiGluBackward(grad_y.data_ptr(), gate.data_ptr(), up.data_ptr(),
                                          gate.numel(), grad_gate.data_ptr(), grad_up.data_ptr(),
                                          storage, CurrentCudaStream(gate.device())),
            "SwiGLU backward");
      return {grad_gate, grad_up};
    }
#endif
    // silu'(g) = s (1 + g (1 - s)), s = sigmoid(g); in fp32, rounded once into the dtype.
    const torch::Dtype dtype = gate.scalar_type();
    const torch::Tensor g32 = gate.to(torch::kFloat32);
    const torch::Tensor s = torch::sigmoid(g32);
    const torch::Tensor grad_silu = (grad_y * up).to(torch::kFloat32);
    torch::Tensor grad_gate = (grad_silu * s * (1 + g32 * (1 - s))).to(dtype);
    torch::Tensor grad_up = grad_y * torch::silu(gate);
    return {grad_gate, grad_up};
  }
};

struct RotaryFunction : public torch::autograd::Function<RotaryFunction> {
  // x [B,H,T,Dh], cos / sin [T,Dh] -> [B,H,T,Dh].
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
#if TUNELEDGER_WITH_CUDA
    kernels::Storage storage;
    if (KernelStorage(x, &storage) && x.dim() == 4 && x.stride(3) == 1 &&
        cos.scalar_type() == x.scalar_type() && sin.scalar_type() == x.scalar_type()) {
      return LaunchRope(x, cos, sin, storage, /*backward=*/false);
    }
#endif
    return ApplyRotary(x, cos, sin);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& cos = saved[0];  // [T,Dh]
    const torch::Tensor& sin = saved[1];  // [T,Dh]
    const torch::Tensor& grad_y = grad_outputs[0];
#if TUNELEDGER_WITH_CUDA
    kernels::Storage storage;
    if (KernelStorage(grad_y, &storage) && grad_y.dim() == 4 && grad_y.stride(3) == 1 &&
        cos.scalar_type() == grad_y.scalar_type() && sin.scalar_type() == grad_y.scalar_type()) {
      return {LaunchRope(grad_y, cos, sin, storage, /*backward=*/true), torch::Tensor(),
              torch::Tensor()};
    }
#endif
    // The rotation's transpose is its negation: d/dx = g cos - rotate_half(g sin).
    return {grad_y * cos - RotateHalf(grad_y * sin), torch::Tensor(), torch::Tensor()};
  }

#if TUNELEDGER_WITH_CUDA
  static torch::Tensor LaunchRope(const torch::Tensor& in, const torch::Tensor& cos,
                                  const torch::Tensor& sin, kernels::Storage storage,
                                  bool backward) {
    const c10::DeviceGuard guard(in.device());
    const torch::Tensor c = cos.contiguous(), s = sin.contiguous();
    kernels::RopeShape shape;
    shape.batch = in.size(0);
    shape.heads = in.size(1);
    shape.tokens = in.size(2);
    shape.head_dim = in.size(3);
    shape.stride_b = in.stride(0);
    shape.stride_h = in.stride(1);
    shape.stride_t = in.stride(2);
    torch::Tensor out = torch::empty(in.sizes(), in.options());  // contiguous [B,H,T,Dh]
    void* stream = CurrentCudaStream(in.device());
    Check(backward ? kernels::LaunchRopeBackward(in.data_ptr(), c.data_ptr(), s.data_ptr(), shape,
                                                 out.data_ptr(), storage, stream)
                   : kernels::LaunchRopeForward(in.data_ptr(), c.data_ptr(), s.data_ptr(), shape,
                                                out.data_ptr(), storage, stream),
          backward ? "RoPE backward" : "RoPE forward");
    return out;
  }
#endif
};

}  // namespace

torch::Tensor ReferenceRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return RmsNormFormula(x, weight, eps, nullptr);
}

torch::Tensor FusedRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (weight.requires_grad()) return ReferenceRmsNorm(x, weight, eps);
  return RmsNormFunction::apply(x, weight, eps);
}

torch::Tensor ReferenceSwiGlu(const torch::Tensor& gate, const torch::Tensor& up) {
  return torch::silu(gate) * up;  // [...,F]
}

torch::Tensor FusedSwiGlu(const torch::Tensor& gate, const torch::Tensor& up) {
  return SwiGluFunction::apply(gate, up);
}

torch::Tensor FusedRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
  return RotaryFunction::apply(x, cos, sin);
}

}  // namespace tuneledger::train
