#include "worker/trainer/recipe/data_parallel.h"

#include <torch/torch.h>

#include <exception>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <utility>

#include "lm/trainer_error.h"

// Gloo's headers come from Debian's libgloo-dev (the wheel ships LibTorch's Gloo compiled in but
// not its headers; only pointers to Gloo types cross into this file). NCCL's come with the CUDA
// wheel (nvidia/nccl/include, added by worker/trainer/recipe/CMakeLists.txt).
#if __has_include(<gloo/context.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define TUNELEDGER_HAS_GLOO 1
#endif
#if defined(TUNELEDGER_WITH_CUDA) && __has_include(<nccl.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define TUNELEDGER_HAS_NCCL 1
#endif

namespace tuneledger::train {

RowShard ShardRows(int64_t rows, int rank, int world_size) {
  const int64_t begin = rows * rank / world_size;
  const int64_t end = rows * (rank + 1) / world_size;
  return RowShard{begin, end - begin};
}

std::pair<std::string, uint16_t> ParseRendezvous(const std::string& address) {
  const size_t colon = address.rfind(':');
  const auto bad = [&] {
    return TrainError("--rendezvous: want HOST:PORT (port 1-65535), got \"" + address + "\"");
  };
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) throw bad();
  int64_t port = 0;
  for (size_t i = colon + 1; i < address.size(); ++i) {
    const char c = address[i];
    if (c < '0' || c > '9' || port > 65535) throw bad();
    port = port * 10 + (c - '0');
  }
  if (port < 1 || port > 65535) throw bad();
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [IPv6]:port
  }
  return {host, static_cast<uint16_t>(port)};
}

struct DataParallel::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  torch::Device device = torch::kCPU;
  std::chrono::milliseconds timeout{0};

  // Waits for `work`, turning a peer's failure into a TrainError that says what was lost.
  void Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) const {
    try {
      work->wait(timeout);
    } catch (const std::exception& e) {
      throw RankLostError(std::string("data parallel: ") + what +
                          " failed (a rank was lost or timed out): " + e.what());
    }
  }
};

DataParallel::DataParallel() = default;
DataParallel::~DataParallel() = default;

DataParallel::DataParallel(const RankOptions& options, const torch::Device& device)
    : rank_(options.rank), world_size_(options.world_size) {
  if (world_size_ < 1 || rank_ < 0 || rank_ >= world_size_) {
    throw TrainError("--rank " + std::to_string(rank_) + " --world-size " +
                     std::to_string(world_size_) + ": want 0 <= rank < world size");
  }
  if (world_size_ == 1) return;
  const auto [host, port] = ParseRendezvous(options.rendezvous);
  const std::string who = "rank " + std::to_string(rank_) + " of " + std::to_string(world_size_) +
                          " at rendezvous " + options.rendezvous;
  group_ = std::make_unique<Group>();
  group_->device = device;
  group_->timeout = options.timeout;
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = port;
    store_options.isServer = rank_ == 0;
    store_options.numWorkers = static_cast<size_t>(world_size_);
    store_options.waitWorkers = true;
    store_options.timeout = options.timeout;
    group_->store = c10::make_intrusive<c10d::TCPStore>(host, store_options);
    if (device.is_cuda()) {
#ifdef TUNELEDGER_HAS_NCCL
      group_->backend =
          c10::make_intrusive<c10d::ProcessGroupNCCL>(group_->store, rank_, world_size_);
#else
      throw TrainError("this trainer was built without NCCL: data parallel on CUDA needs it");
#endif
    } else {
#ifdef TUNELEDGER_HAS_GLOO
      group_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(
          group_->store, rank_, world_size_,
          c10d::ProcessGroupGloo::Options::create_default(options.timeout));
#else
      throw TrainError(
          "this trainer was built without Gloo headers (libgloo-dev): data "
          "parallel on CPU needs them");
#endif
    }
  } catch (const TrainError&) {
    throw;
  } catch (const std::exception& e) {
    // The store or the group could not gather every rank in time.
    throw RankLostError("data parallel: " + who + ": " + e.what());
  }
}

void DataParallel::AllReduceGradients(const std::vector<torch::Tensor>& parameters) {
  if (!group_) return;
  torch::NoGradGuard no_grad;
  // Buckets of consecutive parameters of one dtype, up to kBucketBytes each; each is flattened,
  // summed in flight with the others, and copied back.
  struct Bucket {
    std::vector<torch::Tensor> grads;
    std::vector<torch::Tensor> flat;  // one tensor, as c10d wants a vector
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  int64_t bucket_bytes = 0;
  for (const torch::Tensor& parameter : parameters) {
    torch::Tensor grad = parameter.mutable_grad();
    if (!grad.defined()) {
      grad = torch::zeros_like(parameter);
      parameter.mutable_grad() = grad;
    }
    const int64_t bytes = grad.numel() * static_cast<int64_t>(grad.element_size());
    if (buckets.empty() || bucket_bytes + bytes > kBucketBytes ||
        buckets.back().grads.front().scalar_type() != grad.scalar_type()) {
      buckets.emplace_back();
      bucket_bytes = 0;
    }
    buckets.back().grads.push_back(grad);
    bucket_bytes += bytes;
  }
  for (Bucket& bucket : buckets) {
    std::vector<torch::Tensor> flat_views;
    for (const torch::Tensor& grad : bucket.grads) flat_views.push_back(grad.reshape({-1}));
    bucket.flat = {torch::cat(flat_views)};
    c10d::AllreduceOptions reduce;
    reduce.reduceOp = c10d::ReduceOp::SUM;
    bucket.work = group_->backend->allreduce(bucket.flat, reduce);
  }
  for (Bucket& bucket : buckets) {
    group_->Wait(bucket.work, "gradient all-reduce");
    int64_t offset = 0;
    for (torch::Tensor& grad : bucket.grads) {
      grad.copy_(bucket.flat[0].narrow(0, offset, grad.numel()).view_as(grad));
      offset += grad.numel();
    }
  }
}

std::vector<double> DataParallel::AllReduceSum(const std::vector<double>& values) {
  if (!group_ || values.empty()) return values;
  std::vector<torch::Tensor> tensors = {
      torch::tensor(values, torch::TensorOptions().dtype(torch::kFloat64)).to(group_->device)};
  c10d::AllreduceOptions reduce;
  reduce.reduceOp = c10d::ReduceOp::SUM;
  group_->Wait(group_->backend->allreduce(tensors, reduce), "all-reduce");
  const torch::Tensor sums = tensors[0].to(torch::kCPU).contiguous();
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

void DataParallel::Broadcast(const std::vector<torch::Tensor>& tensors) {
  if (!group_) return;
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& tensor : tensors) {
    std::vector<torch::Tensor> one = {tensor.detach()};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    group_->Wait(group_->backend->broadcast(one, options), "broadcast");
  }
}

}  // namespace tuneledger::train
