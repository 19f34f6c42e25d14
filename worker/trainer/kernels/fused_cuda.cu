// Shape legend: rows the product of the leading dims, D hidden, n values, B batch, H heads,
// T tokens, Dh head dim (fused_cuda.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "worker/trainer/kernels/float_storage.cuh"
#include "worker/trainer/kernels/fused_cuda.h"

namespace tuneledger::train::kernels {
namespace {

constexpr int kThreads = 256;

// The sum of every thread's `value` in the block (blockDim.x a multiple of 32, at most 1024),
// returned to every thread.
__device__ float BlockSum(float value) {
  __shared__ float partial[32];
  __shared__ float total;
  for (int offset = 16; offset > 0; offset >>= 1) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) {
      value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    if (lane == 0) total = value;
  }
  __syncthreads();
  return total;
}

// One block per row.
template <typename T>
__global__ void RmsNormForwardKernel(const T* __restrict__ x, const float* __restrict__ weight,
                                     int64_t dim, float eps, T* __restrict__ y,
                                     float* __restrict__ inv_rms) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * dim;
  T* yr = y + row * dim;
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = ToFloat<T>(xr[i]);
    squares += v * v;
  }
  const float inv = rsqrtf(BlockSum(squares) / static_cast<float>(dim) + eps);
  if (threadIdx.x == 0) inv_rms[row] = inv;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float normed = Round<T>(ToFloat<T>(xr[i]) * inv);
    yr[i] = FromFloat<T>(Round<T>(weight[i]) * normed);
  }
}

template <typename T>
__global__ void RmsNormBackwardKernel(const T* __restrict__ grad_y, const T* __restrict__ x,
                                      const float* __restrict__ weight,
                                      const float* __restrict__ inv_rms, int64_t dim,
                                      T* __restrict__ grad_x) {
  const int64_t row = blockIdx.x;
  const T* gr = grad_y + row * dim;
  const T* xr = x + row * dim;
  T* out = grad_x + row * dim;
  const float inv = inv_rms[row];
  float dot = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float gn = Round<T>(ToFloat<T>(gr[i]) * Round<T>(weight[i]));
    dot += gn * ToFloat<T>(xr[i]) * inv;
  }
  const float mean_dot = BlockSum(dot) / static_cast<float>(dim);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float gn = Round<T>(ToFloat<T>(gr[i]) * Round<T>(weight[i]));
    const float normed = ToFloat<T>(xr[i]) * inv;
    out[i] = FromFloat<T>(inv * (gn - normed * mean_dot));
  }
}

__device__ float Sigmoid(float v) { return 1.0f / (1.0f + __expf(-v)); }

template <typename T>
__global__ void SwiGluForwardKernel(const T* __restrict__ gate, const T* __restrict__ up, int64_t n,
                                    T* __restrict__ y) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = ToFloat<T>(gate[i]);
    y[i] = FromFloat<T>(Round<T>(g * Sigmoid(g)) * ToFloat<T>(up[i]));
  }
}

template <typename T>
__global__ void SwiGluBackwardKernel(const T* __restrict__ grad_y, const T* __restrict__ gate,
                                     const T* __restrict__ up, int64_t n, T* __restrict__ grad_gate,
                                     T* __restrict__ grad_up) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float gy = ToFloat<T>(grad_y[i]);
    const float g = ToFloat<T>(gate[i]);
    const float s = Sigmoid(g);
    const float grad_silu = Round<T>(gy * ToFloat<T>(up[i]));
    grad_gate[i] = FromFloat<T>(grad_silu * s * (1.0f + g * (1.0f - s)));
    grad_up[i] = FromFloat<T>(gy * Round<T>(g * s));
  }
}

// One thread per output value, in the contiguous [B,H,T,Dh] order of the output. `backward`:
// grad_x from grad_y (the transposed rotation), else y from x.
template <typename T, bool kBackward>
__global__ void RopeKernel(const T* __restrict__ in, const T* __restrict__ cos,
                           const T* __restrict__ sin, RopeShape shape, T* __restrict__ out) {
  const int64_t total = shape.batch * shape.heads * shape.tokens * shape.head_dim;
  const int64_t half = shape.head_dim / 2;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % shape.head_dim;
    const int64_t t = (i / shape.head_dim) % shape.tokens;
    const int64_t h = (i / (shape.head_dim * shape.tokens)) % shape.heads;
    const int64_t b = i / (shape.head_dim * shape.tokens * shape.heads);
    const T* row = in + b * shape.stride_b + h * shape.stride_h + t * shape.stride_t;
    const T* cos_row = cos + t * shape.head_dim;
    const T* sin_row = sin + t * shape.head_dim;
    const float direct = Round<T>(ToFloat<T>(row[d]) * ToFloat<T>(cos_row[d]));
    const int64_t partner = d < half ? d + half : d - half;
    float rotated = 0.0f;
    if (kBackward) {
      // -rotate_half(grad_y sin)[d]: +(g sin)[d + half] in the first half, -(g sin)[d - half]
      // in the second.
      const float product = Round<T>(ToFloat<T>(row[partner]) * ToFloat<T>(sin_row[partner]));
      rotated = d < half ? product : -product;
    } else {
      const float x_partner = ToFloat<T>(row[partner]);
      rotated = Round<T>((d < half ? -x_partner : x_partner) * ToFloat<T>(sin_row[d]));
    }
    out[i] = FromFloat<T>(direct + rotated);
  }
}

int GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  // Grid-stride loops cover the rest.
  return static_cast<int>(blocks < 65535 * 16 ? (blocks > 0 ? blocks : 1) : 65535 * 16);
}

// Threads per row of the norm: enough for the row, a multiple of 32, at most 1024.
int NormThreads(int64_t dim) {
  int64_t threads = 32;
  while (threads < dim && threads < 1024) threads *= 2;
  return static_cast<int>(threads);
}

const char* LastError() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

template <typename Launch>
const char* Dispatch(Storage storage, Launch&& launch) {
  switch (storage) {
    case Storage::kFloat32:
      launch(float{});
      break;
    case Storage::kBFloat16:
      launch(__nv_bfloat16{});
      break;
    case Storage::kFloat16:
      launch(__half{});
      break;
  }
  return LastError();
}

}  // namespace

const char* LaunchRmsNormForward(const void* x, const float* weight, int64_t rows, int64_t dim,
                                 float eps, void* y, float* inv_rms, Storage storage,
                                 void* stream) {
  if (rows == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  return Dispatch(storage, [&](auto zero) {
    using T = decltype(zero);
    RmsNormForwardKernel<T><<<static_cast<unsigned>(rows), NormThreads(dim), 0, s>>>(
        static_cast<const T*>(x), weight, dim, eps, static_cast<T*>(y), inv_rms);
  });
}

const char* LaunchRmsNormBackward(const void* grad_y, const void* x, const float* weight,
                                  const float* inv_rms, int64_t rows, int64_t dim, void* grad_x,
                                  Storage storage, void* stream) {
  if (rows == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  return Dispatch(storage, [&](auto zero) {
    using T = decltype(zero);
    RmsNormBackwardKernel<T><<<static_cast<unsigned>(rows), NormThreads(dim), 0, s>>>(
        static_cast<const T*>(grad_y), static_cast<const T*>(x), weight, inv_rms, dim,
        static_cast<T*>(grad_x));
  });
}

const char* LaunchSwiGluForward(const void* gate, const void* up, int64_t n, void* y,
                                Storage storage, void* stream) {
  if (n == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  return Dispatch(storage, [&](auto zero) {
    using T = decltype(zero);
    SwiGluForwardKernel<T><<<GridFor(n), kThreads, 0, s>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), n, static_cast<T*>(y));
  });
}

const char* LaunchSwiGluBackward(const void* grad_y, const void* gate, const void* up, int64_t n,
                                 void* grad_gate, void* grad_up, Storage storage, void* stream) {
  if (n == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  return Dispatch(storage, [&](auto zero) {
    using T = decltype(zero);
    SwiGluBackwardKernel<T><<<GridFor(n), kThreads, 0, s>>>(
        static_cast<const T*>(grad_y), static_cast<const T*>(gate), static_cast<const T*>(up), n,
        static_cast<T*>(grad_gate), static_cast<T*>(grad_up));
  });
}

const char* LaunchRopeForward(const void* x, const void* cos, const void* sin,
                              const RopeShape& shape, void* y, Storage storage, void* stream) {
  const int64_t total = shape.batch * shape.heads * shape.tokens * shape.head_dim;
  if (total == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  return Dispatch(storage, [&](auto zero) {
    using T = decltype(zero);
    RopeKernel<T, false>
        <<<GridFor(total), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<const T*>(cos),
                                             static_cast<const T*>(sin), shape, static_cast<T*>(y));
  });
}

const char* LaunchRopeBackward(const void* grad_y, const void* cos, const void* sin,
                               const RopeShape& shape, void* grad_x, Storage storage,
                               void* stream) {
  const int64_t total = shape.batch * shape.heads * shape.tokens * shape.head_dim;
  if (total == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  return Dispatch(storage, [&](auto zero) {
    using T = decltype(zero);
    RopeKernel<T, true><<<GridFor(total), kThreads, 0, s>>>(
        static_cast<const T*>(grad_y), static_cast<const T*>(cos), static_cast<const T*>(sin),
        shape, static_cast<T*>(grad_x));
  });
}

}  // namespace tuneledger::train::kernels
