// The NF4 codebook alone, in C++17, so that the CUDA kernels (dequant_cuda.cu, built as C++17)
// read the very values block_quant.h quantizes with.
#ifndef TUNELEDGER_WORKER_TRAINER_QUANT_NF4_CODEBOOK_H_
#define TUNELEDGER_WORKER_TRAINER_QUANT_NF4_CODEBOOK_H_

#include <array>

namespace tuneledger::train::quant {

// The 16 NF4 values: quantiles of N(0, 1) rescaled to [-1, 1], with an exact 0 (the QLoRA
// paper's appendix table, as bitsandbytes ships it), in increasing order.
inline constexpr std::array<float, 16> kNf4Codebook = {-1.0f,
                                                       -0.6961928009986877f,
                                                       -0.5250730514526367f,
                                                       -0.39491748809814453f,
                                                       -0.28444138169288635f,
                                                       -0.18477343022823334f,
                                                       -0.09105003625154495f,
                                                       0.0f,
                                                       0.07958029955625534f,
                                                       0.16093020141124725f,
                                                       0.24611230194568634f,
                                                       0.33791524171829224f,
                                                       0.44070982933044434f,
                                                       0.5626170039176941f,
                                                       0.7229568362236023f,
                                                       1.0f};

}  // namespace tuneledger::train::quant

#endif  // TUNELEDGER_WORKER_TRAINER_QUANT_NF4_CODEBOOK_H_
