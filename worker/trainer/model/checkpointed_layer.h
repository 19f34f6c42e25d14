// Gradient checkpointing for one decoder layer: the forward pass keeps only the layer's input;
// backward re-runs the layer under grad and back-propagates through the recomputation.
//
// Shape legend: B batch, T tokens, D hidden, Dh head dim.
//
//   forward:  y = layer(x) under no_grad; save x and the RNG state of x's device
//   backward: restore that RNG state (so dropout draws the same masks), y' = layer(x') with
//             x' = x.detach().requires_grad_(), then (dx, dparams) = grad(y', [x', params], dy)
//
// The layer's trainable parameters (requires_grad) are inputs of the autograd Function, so
// their gradients flow like any other (torch::autograd::grad works, not only .backward()).
// The default generator's state after the forward pass is put back after the recompute, so
// checkpointing changes no later random draw. Without grad (eval, no_grad) this is a plain
// call. A test checks LoRA gradients equal the un-checkpointed ones (<= 1e-6) with dropout on.
#ifndef TUNELEDGER_WORKER_TRAINER_MODEL_CHECKPOINTED_LAYER_H_
#define TUNELEDGER_WORKER_TRAINER_MODEL_CHECKPOINTED_LAYER_H_

#include <torch/types.h>

#include "worker/trainer/model/llama_decoder_layer.h"

namespace tuneledger::train {

// x [B,T,D] fp32; cos, sin [T,Dh] -> [B,T,D] fp32, recomputed in backward.
torch::Tensor CheckpointedLayerForward(LlamaDecoderLayer& layer, const torch::Tensor& x,
                                       const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_MODEL_CHECKPOINTED_LAYER_H_
