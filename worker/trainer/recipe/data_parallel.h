// Data-parallel training over LibTorch's c10d: N trainer processes (ranks), one per device, each
// holding the whole model and a share of every batch.
//
//   rendezvous  rank 0 hosts a c10d::TCPStore on --rendezvous HOST:PORT; every rank connects to
//               it and builds a process group on it: ProcessGroupNCCL for CUDA tensors (when the
//               trainer was built with CUDA), ProcessGroupGloo on CPU.
//   the batch   training.batch_size is the global batch. Every rank builds the same batches in
//               the same order (same data, same seed) and trains the rows RowShard() gives it;
//               LoRA dropout draws each row's mask from a generator of its own, seeded by the
//               shared generator's state and the row's index in the batch (DrawDropoutKeep in
//               lora_linear.h), so N ranks draw what one would, each only its own rows.
//   gradients   each rank divides its summed loss by the whole step's target count (every rank
//               knows it: it holds the whole batch), so that the SUM of the ranks' gradients is
//               the one-process gradient; they are summed in buckets of about
//               RankOptions::bucket_bytes. During the step's last backward
//               (ExpectLastBackward), a hook after each parameter's gradient accumulation copies
//               it into its bucket, and a full bucket's all-reduce starts at once, while autograd
//               goes on with the earlier layers; AllReduceGradients starts the rest, waits and
//               copies the sums back. Buckets start strictly in order on every rank, so the
//               collectives pair up whatever order gradients arrive in (or none, on a rank with
//               no rows in that micro-batch). Every rank then takes the same optimizer step and
//               keeps identical parameters.
//   consensus   AllReduceSum carries the step's loss and each rank's stop request, so that a
//               SIGTERM to any rank stops all of them after the same step; evaluation splits the
//               validation batches across ranks and sums (loss, targets).
//   files       rank 0 alone writes checkpoints, the adapter and the merged model, and prints
//               progress lines (train_main.cc).
//
// A lost rank makes the others' next collective throw (Gloo/NCCL see the connection close, or
// the timeout passes): the attempt fails as a whole and resumes from rank 0's last checkpoint.
//
// Thread safety: none; the training thread owns it (the gradient hooks run on autograd's
// threads and take the buckets' own lock).
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_DATA_PARALLEL_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_DATA_PARALLEL_H_

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tuneledger::train {

struct RankOptions {
  int rank = 0;
  int world_size = 1;
  std::string rendezvous;  // HOST:PORT of rank 0's store; required when world_size > 1
  // How long a rank waits for the others, at the rendezvous and in each collective.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
  // Gradient buckets: consecutive parameters, last first (backward produces the last layers'
  // gradients first), up to this many bytes each (a larger parameter is a bucket of its own).
  int64_t bucket_bytes = int64_t{25} << 20;
};

// The rows [offset, offset + count) of a batch of `rows` that rank `rank` of `world_size`
// trains: contiguous, sizes differing by at most one (a short last batch leaves some ranks
// fewer rows, possibly none).
struct RowShard {
  int64_t offset = 0;
  int64_t count = 0;
};
RowShard ShardRows(int64_t rows, int rank, int world_size);

// "HOST:PORT" -> (host, port); TrainError naming --rendezvous otherwise.
std::pair<std::string, uint16_t> ParseRendezvous(const std::string& address);

class DataParallel {
 public:
  // One process: no communication at all.
  DataParallel();
  // Connects to the rendezvous and builds the process group for `device`. TrainError naming the
  // rank, world size and address when the rendezvous fails or times out.
  DataParallel(const RankOptions& options, const torch::Device& device);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_primary() const { return rank_ == 0; }
  RowShard Shard(int64_t rows) const { return ShardRows(rows, rank_, world_size_); }

  // This rank's last backward of the step comes next: until AllReduceGradients, gradients are
  // bucketed and all-reduced as autograd accumulates them (the header comment). `parameters`
  // must be the list AllReduceGradients then gets; the hooks are installed on the first call.
  void ExpectLastBackward(const std::vector<torch::Tensor>& parameters);
  // Sums the gradients of `parameters` over the ranks, in place (undefined gradients count as
  // zero and become defined): starts every bucket not started during the backward, waits for
  // all of them and copies the sums back.
  void AllReduceGradients(const std::vector<torch::Tensor>& parameters);
  // Of the last AllReduceGradients: the buckets, and how many of them started during the
  // backward rather than after it.
  int64_t gradient_buckets() const;
  int64_t buckets_started_in_backward() const;
  // The element-wise sum of `values` over the ranks (fp64, on the group's device).
  std::vector<double> AllReduceSum(const std::vector<double>& values);
  // Rank 0's values of `tensors`, in place on every rank.
  void Broadcast(const std::vector<torch::Tensor>& tensors);

 private:
  struct Group;
  class GradientBuckets;
  // The buckets of `parameters`, built (and their hooks installed) for a new list.
  GradientBuckets& BucketsFor(const std::vector<torch::Tensor>& parameters);
  int rank_ = 0;
  int world_size_ = 1;
  int64_t bucket_bytes_ = RankOptions().bucket_bytes;
  std::unique_ptr<Group> group_;
  std::unique_ptr<GradientBuckets> buckets_;  // after group_: its hooks use the group
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_DATA_PARALLEL_H_
