#include "worker/trainer/recipe/data_parallel.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <algorithm>
#include <exception>
#include <mutex>
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
    : rank_(options.rank), world_size_(options.world_size), bucket_bytes_(options.bucket_bytes) {
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

// The gradient buckets of one parameter list, filled by a hook after each parameter's gradient
// accumulation during an armed backward.
class DataParallel::GradientBuckets {
 public:
  GradientBuckets(const std::vector<torch::Tensor>& parameters, int64_t bucket_bytes,
                  const Group* group)
      : group_(group) {
    int64_t bytes_in_bucket = 0;
    // Last parameter first: the order in which backward produces the gradients.
    for (auto it = parameters.rbegin(); it != parameters.rend(); ++it) {
      const torch::Tensor& parameter = *it;
      const int64_t bytes = parameter.numel() * static_cast<int64_t>(parameter.element_size());
      if (buckets_.empty() || bytes_in_bucket + bytes > bucket_bytes ||
          buckets_.back().parameters.front().scalar_type() != parameter.scalar_type()) {
        buckets_.emplace_back();
        bytes_in_bucket = 0;
      }
      Bucket& bucket = buckets_.back();
      bucket.offsets.push_back(bucket.numel);
      bucket.numel += parameter.numel();
      bucket.parameters.push_back(parameter);
      bytes_in_bucket += bytes;
      impls_.push_back(parameter.unsafeGetTensorImpl());
    }
    std::reverse(impls_.begin(), impls_.end());
    for (size_t b = 0; b < buckets_.size(); ++b) {
      Bucket& bucket = buckets_[b];
      bucket.flat = torch::empty({bucket.numel}, bucket.parameters.front().options());
      bucket.filled.assign(bucket.parameters.size(), false);
      for (size_t i = 0; i < bucket.parameters.size(); ++i) {
        torch::autograd::impl::set_post_acc_grad_hooks(bucket.parameters[i],
                                                       std::make_unique<Hook>(this, b, i));
      }
    }
  }

  ~GradientBuckets() {
    for (Bucket& bucket : buckets_) {
      for (torch::Tensor& parameter : bucket.parameters) {
        torch::autograd::impl::set_post_acc_grad_hooks(parameter, nullptr);
      }
    }
  }

  bool Matches(const std::vector<torch::Tensor>& parameters) const {
    if (parameters.size() != impls_.size()) return false;
    for (size_t i = 0; i < parameters.size(); ++i) {
      if (parameters[i].unsafeGetTensorImpl() != impls_[i]) return false;
    }
    return true;
  }

  void Arm() {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = true;
  }

  // Starts the buckets not started yet, waits for every one and copies the sums back.
  void Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      armed_ = false;
      for (Bucket& bucket : buckets_) {
        for (size_t i = 0; i < bucket.parameters.size(); ++i) {
          if (!bucket.filled[i]) CopyIn(bucket, i);
        }
      }
      StartFullBucketsLocked(/*in_backward=*/false);
      if (!failure_.empty()) throw RankLostError(failure_);
    }
    torch::NoGradGuard no_grad;
    for (Bucket& bucket : buckets_) {
      group_->Wait(bucket.work, "gradient all-reduce");
      for (size_t i = 0; i < bucket.parameters.size(); ++i) {
        torch::Tensor& parameter = bucket.parameters[i];
        parameter.mutable_grad().copy_(
            bucket.flat.narrow(0, bucket.offsets[i], parameter.numel()).view_as(parameter));
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (Bucket& bucket : buckets_) {
      bucket.filled.assign(bucket.parameters.size(), false);
      bucket.work.reset();
    }
    last_started_in_backward_ = started_in_backward_;
    started_in_backward_ = 0;
    next_ = 0;
  }

  int64_t size() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t last_started_in_backward() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_started_in_backward_;
  }

 private:
  struct Bucket {
    std::vector<torch::Tensor> parameters;
    std::vector<int64_t> offsets;  // of each parameter in `flat`
    int64_t numel = 0;
    torch::Tensor flat;                   // [numel]
    std::vector<bool> filled;             // this step's gradient copied into `flat`
    c10::intrusive_ptr<c10d::Work> work;  // set once started
  };

  class Hook : public torch::autograd::PostAccumulateGradHook {
   public:
    Hook(GradientBuckets* owner, size_t bucket, size_t index)
        : owner_(owner), bucket_(bucket), index_(index) {}
    void operator()(const torch::autograd::Variable& /*parameter*/) override {
      owner_->OnGradient(bucket_, index_);
    }

   private:
    GradientBuckets* owner_;
    size_t bucket_;
    size_t index_;
  };

  // On autograd's thread, once the parameter's .grad holds this backward's contribution too.
  void OnGradient(size_t b, size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!armed_) return;  // an earlier micro-batch: the gradient keeps accumulating
    Bucket& bucket = buckets_[b];
    if (bucket.work) {
      failure_ = "data parallel: a gradient arrived after its bucket was all-reduced";
      return;
    }
    CopyIn(bucket, i);
    StartFullBucketsLocked(/*in_backward=*/true);
  }

  void CopyIn(Bucket& bucket, size_t i) {
    torch::NoGradGuard no_grad;
    torch::Tensor& parameter = bucket.parameters[i];
    torch::Tensor& grad = parameter.mutable_grad();
    if (!grad.defined()) grad = torch::zeros_like(parameter);
    bucket.flat.narrow(0, bucket.offsets[i], parameter.numel()).copy_(grad.reshape({-1}));
    bucket.filled[i] = true;
  }

  // Starts buckets in index order while the next one is full, so that every rank issues the
  // same collectives in the same order.
  void StartFullBucketsLocked(bool in_backward) {
    while (next_ < buckets_.size() && failure_.empty()) {
      Bucket& bucket = buckets_[next_];
      for (bool filled : bucket.filled) {
        if (!filled) return;
      }
      try {
        std::vector<torch::Tensor> flat = {bucket.flat};
        c10d::AllreduceOptions reduce;
        reduce.reduceOp = c10d::ReduceOp::SUM;
        bucket.work = group_->backend->allreduce(flat, reduce);
      } catch (const std::exception& e) {
        failure_ = std::string("data parallel: starting a gradient all-reduce failed: ") + e.what();
        return;
      }
      ++next_;
      if (in_backward) ++started_in_backward_;
    }
  }

  const Group* group_;
  std::vector<Bucket> buckets_;
  std::vector<const c10::TensorImpl*> impls_;  // the parameters, in the caller's order
  mutable std::mutex mu_;
  bool armed_ = false;
  size_t next_ = 0;  // the next bucket to start
  int64_t started_in_backward_ = 0;
  int64_t last_started_in_backward_ = 0;
  std::string failure_;
};

DataParallel::GradientBuckets& DataParallel::BucketsFor(
    const std::vector<torch::Tensor>& parameters) {
  if (!buckets_ || !buckets_->Matches(parameters)) {
    buckets_.reset();  // its hooks go first
    buckets_ = std::make_unique<GradientBuckets>(parameters, bucket_bytes_, group_.get());
  }
  return *buckets_;
}

void DataParallel::ExpectLastBackward(const std::vector<torch::Tensor>& parameters) {
  if (group_) BucketsFor(parameters).Arm();
}

void DataParallel::AllReduceGradients(const std::vector<torch::Tensor>& parameters) {
  if (group_) BucketsFor(parameters).Finish();
}

int64_t DataParallel::gradient_buckets() const { return buckets_ ? buckets_->size() : 0; }

int64_t DataParallel::buckets_started_in_backward() const {
  return buckets_ ? buckets_->last_started_in_backward() : 0;
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
