// rpc_bench: what a user and a worker see of the server end to end: an in-process
// tuneledger-server stack (SQLite store in a temp dir, Scheduler with its ticker, JobService and
// WorkerService on 127.0.0.1:0) called through real gRPC channels over loopback.
//
//   BM_SubmitJobRpc/threads:N          SubmitJob: validation, the submit-time input check, one
//                                      durable Enqueue, metrics, watch fan-out, gRPC both ways.
//                                      Each thread is a client with its own connection; p50_us
//                                      and p99_us are its latency.
//   BM_SubmitJobCore/threads:N         baseline: the same submit calling Scheduler::SubmitJob
//                                      directly (no gRPC): what the RPC layer adds is the gap
//   BM_HealthCheckRpc/threads:N        baseline: a unary RPC that does no work
//                                      (grpc.health.v1.Health/Check): gRPC's own round trip
//   BM_ReportProgressIntake/workers:S/watchers_per_job:W
//                                      S workers each stream progress reports for their running
//                                      job (one stream and thread each) while W WatchJob streams
//                                      per job read; an iteration is 50 reports per worker and
//                                      ends when every watcher has seen the last one, so
//                                      items_per_second is reports taken in, stored durably and
//                                      fanned out per second
//
// Real clock and real disk: submits and progress reports are fsync'd (see job_store_bench).
#include <benchmark/benchmark.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/channel_arguments.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/data_roots.h"
#include "base/grpc_status.h"
#include "base/status_macros.h"
#include "bench/bench_jobs.h"
#include "bench/latency_recorder.h"
#include "server/core/job_store.h"
#include "server/core/scheduler.h"
#include "server/metrics/server_metrics.h"
#include "server/service/authenticator.h"
#include "server/service/grpc_server.h"
#include "tuneledger/v1/jobs.grpc.pb.h"
#include "tuneledger/v1/worker.grpc.pb.h"

namespace tuneledger::bench {
namespace {

constexpr int kMaxThreads = 8;
constexpr absl::Duration kRpcDeadline = absl::Seconds(10);
constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";

// The bytes of `buffer` (empty when it cannot be read).
std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

// The server as tuneledger-server's main() composes it, minus flags and local workers.
// Thread safety: built and torn down on one thread; Channel() may be called from any thread.
class InProcessServer {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessServer>> Start() {
    auto server = std::unique_ptr<InProcessServer>(new InProcessServer());
    TL_ASSIGN_OR_RETURN(server->dir_, MakeBenchTempDir());
    TL_ASSIGN_OR_RETURN(server->spec_, MakeBenchSpec(*server->dir_));
    TL_ASSIGN_OR_RETURN(server->store_,
                        JobStore::Open(server->dir_->File("jobs.db"), server->clock_));
    SchedulerOptions scheduler_options;
    std::string roots_error;
    std::optional<DataRoots> roots = DataRoots::Parse({server->dir_->path()}, &roots_error);
    if (!roots) return absl::InternalError(roots_error);
    scheduler_options.data_roots = *roots;
    // The submit benchmarks queue far more jobs than a tenant may (1,000 by default).
    scheduler_options.max_queued_jobs_per_tenant = 1 << 30;
    server->scheduler_ = std::make_unique<Scheduler>(*server->store_, server->metrics_,
                                                     server->clock_, scheduler_options);
    TL_RETURN_IF_ERROR(server->scheduler_->Start());
    GrpcServerOptions options;
    options.listen_address = "127.0.0.1:0";
    TL_ASSIGN_OR_RETURN(server->grpc_, GrpcServer::Start(options, *server->scheduler_,
                                                         server->authenticator_, server->metrics_));
    return server;
  }
  ~InProcessServer() {
    if (scheduler_ != nullptr) scheduler_->Stop();
    if (grpc_ != nullptr) grpc_->Shutdown(absl::Seconds(1));
  }
  InProcessServer(const InProcessServer&) = delete;
  InProcessServer& operator=(const InProcessServer&) = delete;

  // A channel with its own connection (`client` makes the channel arguments distinct, so gRPC
  // does not share one subchannel between clients).
  std::shared_ptr<grpc::Channel> Channel(int client) const {
    return ChannelTo(grpc_->port(), client);
  }
  // The same, to the worker listener; calls on it need AuthorizeWorker(context).
  std::shared_ptr<grpc::Channel> WorkerChannel(int client) const {
    return ChannelTo(grpc_->worker_port(), client);
  }
  static void AuthorizeWorker(grpc::ClientContext& context) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", kWorkerToken));
  }
  static constexpr char kWorkerCredential[] = "bench-workers";

  Scheduler& scheduler() { return *scheduler_; }
  const v1::JobSpec& spec() const { return spec_; }

 private:
  InProcessServer() : metrics_(registry_, clock_) {}

  std::unique_ptr<testing::TempDir> dir_;
  v1::JobSpec spec_;
  RealClock clock_;
  prometheus::Registry registry_;
  ServerMetrics metrics_;
  static constexpr char kWorkerToken[] = "bench-worker-token";

  static std::shared_ptr<grpc::Channel> ChannelTo(int port, int client) {
    grpc::ChannelArguments arguments;
    arguments.SetInt("tuneledger.bench_client", client);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials(), arguments);
  }

  Authenticator authenticator_ =
      Authenticator::AllowAll().WithWorkerToken(kWorkerToken, kWorkerCredential);
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<GrpcServer> grpc_;
};

// Shared by the threads of one run; Setup builds it and Teardown drops it (main thread).
InProcessServer* shared_server = nullptr;
absl::Status shared_server_status;

void StartServer(const benchmark::State&) {
  absl::StatusOr<std::unique_ptr<InProcessServer>> started = InProcessServer::Start();
  shared_server_status = started.status();
  shared_server = started.ok() ? started->release() : nullptr;
}
void StopServer(const benchmark::State&) {
  delete shared_server;
  shared_server = nullptr;
}
bool ServerReady(benchmark::State& state) {
  if (shared_server != nullptr) return true;
  state.SkipWithError(shared_server_status.ToString().c_str());
  return false;
}

void BM_SubmitJobRpc(benchmark::State& state) {
  if (!ServerReady(state)) return;
  std::unique_ptr<v1::JobService::Stub> jobs =
      v1::JobService::NewStub(shared_server->Channel(state.thread_index()));
  v1::SubmitJobRequest request;
  *request.mutable_spec() = shared_server->spec();
  LatencyRecorder latency;
  for (auto _ : state) {
    grpc::ClientContext context;
    SetDeadline(context, kRpcDeadline);
    v1::SubmitJobResponse response;
    const auto start = LatencyRecorder::Clock::now();
    const grpc::Status status = jobs->SubmitJob(&context, request, &response);
    latency.Add(LatencyRecorder::Clock::now() - start);
    if (!status.ok()) {
      state.SkipWithError(GrpcStatusText(status).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  latency.Report(state);
}
BENCHMARK(BM_SubmitJobRpc)
    ->Setup(StartServer)
    ->Teardown(StopServer)
    ->Threads(1)
    ->Threads(kMaxThreads)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_SubmitJobCore(benchmark::State& state) {
  if (!ServerReady(state)) return;
  LatencyRecorder latency;
  for (auto _ : state) {
    const auto start = LatencyRecorder::Clock::now();
    const absl::Status status =
        shared_server->scheduler().SubmitJob("default", shared_server->spec()).status();
    latency.Add(LatencyRecorder::Clock::now() - start);
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  latency.Report(state);
}
BENCHMARK(BM_SubmitJobCore)
    ->Setup(StartServer)
    ->Teardown(StopServer)
    ->Threads(1)
    ->Threads(kMaxThreads)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_HealthCheckRpc(benchmark::State& state) {
  if (!ServerReady(state)) return;
  const std::shared_ptr<grpc::Channel> channel = shared_server->Channel(state.thread_index());
  // The blocking unary path generated stubs use, with raw bytes: HealthCheckRequest{service:""}
  // is empty, and the answer SERVING is field 1 = 1.
  const grpc::internal::RpcMethod method(kHealthCheckMethod, grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Slice empty("");
  const grpc::ByteBuffer request(&empty, 1);
  const std::string serving("\x08\x01", 2);
  LatencyRecorder latency;
  for (auto _ : state) {
    grpc::ClientContext context;
    SetDeadline(context, kRpcDeadline);
    grpc::ByteBuffer response;
    const auto start = LatencyRecorder::Clock::now();
    const grpc::Status status =
        grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
            channel.get(), method, &context, request, &response);
    latency.Add(LatencyRecorder::Clock::now() - start);
    if (!status.ok()) {
      state.SkipWithError(GrpcStatusText(status).c_str());
      break;
    }
    if (const std::string answer = Bytes(response); answer != serving) {
      state.SkipWithError(
          absl::StrCat("health check answered ", answer.size(), " bytes, not SERVING").c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  latency.Report(state);
}
BENCHMARK(BM_HealthCheckRpc)
    ->Setup(StartServer)
    ->Teardown(StopServer)
    ->Threads(1)
    ->Threads(kMaxThreads)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// WatchJob streams that read everything, each on its own thread, remembering the newest step
// they have seen.
// Thread safety: Add/WaitForStep/destruction on the benchmark thread; readers update the steps
// under mu_.
class Watchers {
 public:
  // Opens `count` more watchers of `job_id` and reads their snapshots.
  absl::Status Add(InProcessServer& in_process, const std::string& job_id, int count) {
    for (int i = 0; i < count; ++i) {
      auto watcher = std::make_unique<Watcher>();
      const int index = static_cast<int>(watchers_.size());
      watcher->stub = v1::JobService::NewStub(in_process.Channel(1000 + index));
      SetDeadline(watcher->context, absl::Hours(1));
      v1::WatchJobRequest request;
      request.set_id(job_id);
      watcher->reader = watcher->stub->WatchJob(&watcher->context, request);
      v1::WatchJobResponse snapshot;
      if (!watcher->reader->Read(&snapshot)) {
        return absl::UnavailableError(absl::StrCat("watcher ", index, " of job ", job_id, ": ",
                                                   GrpcStatusText(watcher->reader->Finish())));
      }
      {
        absl::MutexLock lock(&mu_);
        steps_.push_back(snapshot.job().progress().step());
      }
      watcher->thread = std::thread([this, index, reader = watcher->reader.get()] {
        v1::WatchJobResponse message;
        while (reader->Read(&message)) {
          absl::MutexLock lock(&mu_);
          steps_[index] = std::max(steps_[index], message.job().progress().step());
        }
      });
      watchers_.push_back(std::move(watcher));
    }
    return absl::OkStatus();
  }

  // True once every watcher has seen `step`; false at `deadline`.
  bool WaitForStep(int step, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto all_seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (int seen : steps_) {
        if (seen < step) return false;
      }
      return true;
    };
    return mu_.AwaitWithDeadline(absl::Condition(&all_seen), deadline);
  }

  ~Watchers() {
    for (auto& watcher : watchers_) watcher->context.TryCancel();
    for (auto& watcher : watchers_) {
      watcher->thread.join();
      (void)watcher->reader->Finish();  // CANCELLED: we hung up
    }
  }

 private:
  struct Watcher {
    std::unique_ptr<v1::JobService::Stub> stub;
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader;
    std::thread thread;
  };
  std::vector<std::unique_ptr<Watcher>> watchers_;
  absl::Mutex mu_;
  std::vector<int> steps_ ABSL_GUARDED_BY(mu_);  // newest step seen, per watcher
};

// A worker with one running job and its open ReportProgress stream.
// Thread safety: one thread writes at a time (the benchmark's writer thread for this worker).
class ReportingWorker {
 public:
  // Registers a worker, submits a job, leases it and opens the stream.
  static absl::StatusOr<std::unique_ptr<ReportingWorker>> Start(InProcessServer& in_process,
                                                                int client) {
    auto worker = std::unique_ptr<ReportingWorker>(new ReportingWorker());
    Scheduler& scheduler = in_process.scheduler();
    TL_RETURN_IF_ERROR(scheduler.SubmitJob("default", in_process.spec()).status());
    TL_ASSIGN_OR_RETURN(
        const v1::RegisterWorkerResponse registered,
        scheduler.RegisterWorker(BenchWorker(), InProcessServer::kWorkerCredential));
    v1::LeaseJobRequest request;
    request.set_worker_id(registered.worker_id());
    request.set_session_token(registered.session_token());
    TL_ASSIGN_OR_RETURN(const v1::LeaseJobResponse leased,
                        scheduler.LeaseJob(request, InProcessServer::kWorkerCredential));
    if (!leased.has_lease()) return absl::InternalError("the worker got no lease");
    worker->report_.set_worker_id(registered.worker_id());
    worker->report_.set_job_id(leased.lease().job_id());
    worker->report_.set_attempt(leased.lease().attempt());
    worker->report_.set_lease_token(leased.lease().lease_token());
    v1::TrainerUpdate& update = *worker->report_.mutable_update();
    update.set_kind(v1::TrainerUpdate::PROGRESS);
    update.set_total_steps(1'000'000'000);
    update.set_loss(2.0);
    update.set_tokens_per_second(140);
    worker->stub_ = v1::WorkerService::NewStub(in_process.WorkerChannel(client));
    SetDeadline(worker->context_, absl::Hours(1));
    InProcessServer::AuthorizeWorker(worker->context_);
    worker->stream_ = worker->stub_->ReportProgress(&worker->context_);
    return worker;
  }
  ~ReportingWorker() {
    if (stream_ == nullptr) return;
    stream_->WritesDone();
    (void)stream_->Finish();
  }
  ReportingWorker(const ReportingWorker&) = delete;
  ReportingWorker& operator=(const ReportingWorker&) = delete;

  const std::string& job_id() const { return report_.job_id(); }

  // Sends steps first..last; false when the stream closed.
  bool Report(int first, int last) {
    for (int step = first; step <= last; ++step) {
      report_.mutable_update()->set_step(step);
      report_.mutable_update()->set_tokens(int64_t{2048} * step);
      if (!stream_->Write(report_)) return false;
    }
    return true;
  }

 private:
  ReportingWorker() = default;

  v1::ProgressReport report_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ProgressReport, v1::WorkerCommand>> stream_;
};

// True once every worker's job, read back through the scheduler, is at `step`; false at
// `deadline`. Jobs already seen there are not read again.
bool AllStoredStep(InProcessServer& in_process,
                   const std::vector<std::unique_ptr<ReportingWorker>>& workers, int step,
                   absl::Time deadline) {
  size_t next = 0;
  while (next < workers.size()) {
    absl::StatusOr<v1::Job> job = in_process.scheduler().GetJob("default", workers[next]->job_id());
    if (job.ok() && job->progress().step() >= step) {
      ++next;
      continue;
    }
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

void BM_ReportProgressIntake(benchmark::State& state) {
  constexpr int kReportsPerIteration = 50;  // per worker
  const int worker_count = static_cast<int>(state.range(0));
  const int watchers_per_job = static_cast<int>(state.range(1));
  absl::StatusOr<std::unique_ptr<InProcessServer>> in_process = InProcessServer::Start();
  absl::Status status = in_process.status();
  // Declared after the server: destroyed (streams closed) before it.
  std::vector<std::unique_ptr<ReportingWorker>> workers;
  Watchers watchers;
  for (int i = 0; i < worker_count && status.ok(); ++i) {
    absl::StatusOr<std::unique_ptr<ReportingWorker>> worker =
        ReportingWorker::Start(**in_process, i);
    status = worker.status();
    if (status.ok()) {
      status = watchers.Add(**in_process, (*worker)->job_id(), watchers_per_job);
      workers.push_back(*std::move(worker));
    }
  }
  if (!status.ok()) {
    state.SkipWithError(status.ToString().c_str());
    return;
  }

  int last_step = 0;
  for (auto _ : state) {
    const int first = last_step + 1;
    last_step += kReportsPerIteration;
    std::vector<char> written(workers.size(), 1);
    std::vector<std::thread> writers;
    for (size_t w = 0; w < workers.size(); ++w) {
      writers.emplace_back([&, w] { written[w] = workers[w]->Report(first, last_step); });
    }
    for (std::thread& writer : writers) writer.join();
    if (std::find(written.begin(), written.end(), 0) != written.end()) {
      state.SkipWithError("a ReportProgress stream closed");
      break;
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    const bool stored = watchers_per_job > 0
                            ? watchers.WaitForStep(last_step, deadline)
                            : AllStoredStep(**in_process, workers, last_step, deadline);
    if (!stored) {
      state.SkipWithError(absl::StrCat("step ", last_step, " not seen within 60 s").c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kReportsPerIteration * worker_count);
}
// workers:1000/watchers_per_job:0: a thousand open streams (one connection each), each report
// counted once the job read back from the server holds it (WatchJob streams hold a thread of
// the public listener each, so a thousand of them would measure that pool instead).
BENCHMARK(BM_ReportProgressIntake)
    ->ArgNames({"workers", "watchers_per_job"})
    ->Args({1, 1})
    ->Args({1, 20})
    ->Args({8, 1})
    ->Args({1000, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tuneledger::bench

BENCHMARK_MAIN();
