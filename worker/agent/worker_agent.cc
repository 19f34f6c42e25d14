#include "worker/agent/worker_agent.h"

#include <chrono>
#include <utility>
#include <vector>

#include "base/grpc_status.h"
#include "base/log.h"
#include "worker/agent/backoff.h"
#include "worker/agent/hardware_probe.h"

#ifndef TUNELEDGER_VERSION
#define TUNELEDGER_VERSION "dev"
#endif

namespace tuneledger::worker {
namespace {

using ::tuneledger::v1::DeregisterWorkerRequest;
using ::tuneledger::v1::DeregisterWorkerResponse;
using ::tuneledger::v1::HeartbeatRequest;
using ::tuneledger::v1::HeartbeatResponse;
using ::tuneledger::v1::LeaseJobRequest;
using ::tuneledger::v1::LeaseJobResponse;
using ::tuneledger::v1::RegisterWorkerRequest;
using ::tuneledger::v1::RegisterWorkerResponse;

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

WorkerAgent::WorkerAgent(AgentOptions options, std::shared_ptr<grpc::ChannelInterface> channel)
    : options_(std::move(options)), stub_(tuneledger::v1::WorkerService::NewStub(channel)) {
  HardwareInfo hardware = ProbeHardware(options_.gpu_indices);
  info_.set_hostname(hardware.hostname);
  info_.set_accelerator(hardware.accelerator);
  info_.set_gpus(hardware.gpus);
  info_.set_memory_bytes(hardware.memory_bytes);
  info_.set_price_per_gpu_hour(options_.price_per_gpu_hour);
  info_.set_spot(options_.spot);
  info_.set_on_demand_price_per_gpu_hour(options_.on_demand_price_per_gpu_hour);
  info_.set_version(TUNELEDGER_VERSION);
  info_.set_rendezvous_host(options_.rendezvous_host.empty() ? hardware.hostname
                                                             : options_.rendezvous_host);
  info_.set_rendezvous_port_base(options_.rendezvous_port_base);
  if (!options_.name.empty()) (*info_.mutable_labels())["name"] = options_.name;
}

WorkerAgent::~WorkerAgent() {
  Shutdown();
  {
    absl::MutexLock lock(&mu_);
    heartbeats_stopped_ = true;
  }
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

std::string WorkerAgent::worker_id() const {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

bool WorkerAgent::SleepUnless(const bool* flag, absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(flag), d);
  return !*flag;
}

void WorkerAgent::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  TL_LOG(INFO) << "shutting down"
               << (attempt_ != nullptr ? ": preempting the running attempt" : "");
  if (lease_call_ != nullptr) lease_call_->TryCancel();
  if (attempt_ != nullptr) attempt_->Preempt();
}

bool WorkerAgent::Register() {
  Backoff backoff(absl::Milliseconds(250), absl::Seconds(10));
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) return false;
    }
    RegisterWorkerRequest request;
    *request.mutable_info() = info_;
    RegisterWorkerResponse response;
    grpc::ClientContext context;
    SetDeadline(context, options_.rpc_timeout);
    grpc::Status status = stub_->RegisterWorker(&context, request, &response);
    if (status.ok()) {
      absl::MutexLock lock(&mu_);
      worker_id_ = response.worker_id();
      session_token_ = response.session_token();
      needs_register_ = false;
      registered_ = true;
      if (response.heartbeat_interval_seconds() > 0) {
        heartbeat_interval_ = absl::Seconds(response.heartbeat_interval_seconds());
      }
      if (response.report_interval_seconds() > 0) {
        report_interval_ = absl::Seconds(response.report_interval_seconds());
      }
      TL_LOG(INFO) << "registered with " << options_.server_address << " as worker " << worker_id_
                   << " (" << info_.accelerator() << " x" << info_.gpus() << ", $"
                   << info_.price_per_gpu_hour() << "/GPU-hour" << (info_.spot() ? ", spot" : "")
                   << ")";
      return true;
    }
    absl::Duration delay = backoff.Next();
    TL_LOG(WARNING) << "RegisterWorker with " << options_.server_address
                    << " failed: " << FromGrpcStatus(status) << "; retrying in "
                    << absl::FormatDuration(absl::Trunc(delay, absl::Milliseconds(1)));
    if (!SleepUnless(&shutting_down_, delay)) return false;
  }
}

void WorkerAgent::HeartbeatLoop() {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](WorkerAgent* agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(agent->mu_) {
          return agent->registered_ || agent->heartbeats_stopped_;
        },
        this));
  }
  bool last_failed = false;
  while (true) {
    HeartbeatRequest request;
    absl::Duration interval;
    bool skip;
    {
      absl::MutexLock lock(&mu_);
      if (heartbeats_stopped_) return;
      interval = heartbeat_interval_;
      skip = needs_register_;
      request.set_worker_id(worker_id_);
      request.set_session_token(session_token_);
      // Listed until its FinishAttempt is through: the server ends an attempt missing here.
      if (attempt_ != nullptr) request.add_running_job_ids(attempt_->job_id());
    }
    if (!skip) {
      HeartbeatResponse response;
      grpc::ClientContext context;
      SetDeadline(context, options_.rpc_timeout);
      grpc::Status status = stub_->Heartbeat(&context, request, &response);
      if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
        // The server no longer accepts this worker's session (say, a new database): start over.
        TL_LOG(WARNING) << "Heartbeat refused: " << FromGrpcStatus(status) << "; re-registering";
        absl::MutexLock lock(&mu_);
        needs_register_ = true;
        if (lease_call_ != nullptr) lease_call_->TryCancel();
      } else if (!status.ok()) {
        if (!last_failed) TL_LOG(WARNING) << "Heartbeat failed: " << FromGrpcStatus(status);
        last_failed = true;
      } else {
        if (last_failed) TL_LOG(INFO) << "Heartbeat reaches the server again";
        last_failed = false;
        absl::MutexLock lock(&mu_);
        if (!response.known()) {
          TL_LOG(WARNING) << "the server does not know worker " << worker_id_
                          << " (declared lost?): re-registering";
          needs_register_ = true;
          if (lease_call_ != nullptr) lease_call_->TryCancel();
          if (attempt_ != nullptr) {
            attempt_->Cancel("the server no longer knows this worker; its lease is void");
          }
        }
        for (const std::string& job_id : response.cancel_job_ids()) {
          if (attempt_ != nullptr && attempt_->job_id() == job_id) {
            attempt_->Cancel("cancelled by the server (heartbeat)");
          }
        }
      }
    }
    if (!SleepUnless(&heartbeats_stopped_, interval)) return;
  }
}

void WorkerAgent::Deregister() {
  DeregisterWorkerRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (worker_id_.empty() || needs_register_) return;  // nothing the server would know
    request.set_worker_id(worker_id_);
    request.set_session_token(session_token_);
  }
  DeregisterWorkerResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options_.rpc_timeout);
  const grpc::Status status = stub_->DeregisterWorker(&context, request, &response);
  // Best effort: a server that does not hear it declares this worker LOST later.
  if (!status.ok()) TL_LOG(WARNING) << "DeregisterWorker failed: " << FromGrpcStatus(status);
}

absl::Status WorkerAgent::Run() {
  heartbeat_thread_ = std::thread(&WorkerAgent::HeartbeatLoop, this);
  Backoff backoff(absl::Milliseconds(250), absl::Seconds(10));
  while (true) {
    bool register_now;
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) break;
      register_now = needs_register_;
    }
    if (register_now && !Register()) break;

    LeaseJobRequest request;
    {
      absl::MutexLock lock(&mu_);
      request.set_worker_id(worker_id_);
      request.set_session_token(session_token_);
    }
    request.set_wait_seconds(absl::ToDoubleSeconds(options_.lease_wait));
    LeaseJobResponse response;
    grpc::ClientContext context;
    SetDeadline(context, options_.lease_wait + options_.rpc_timeout);
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) break;
      lease_call_ = &context;
    }
    grpc::Status status = stub_->LeaseJob(&context, request, &response);
    const auto lease_start = std::chrono::steady_clock::now();
    {
      absl::MutexLock lock(&mu_);
      lease_call_ = nullptr;
      if (shutting_down_ && !response.has_lease()) break;
    }
    if (!status.ok()) {
      if (status.error_code() == grpc::StatusCode::NOT_FOUND ||
          status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
        TL_LOG(WARNING) << "LeaseJob refused: " << FromGrpcStatus(status) << "; re-registering";
        absl::MutexLock lock(&mu_);
        needs_register_ = true;
        continue;
      }
      if (status.error_code() == grpc::StatusCode::CANCELLED) continue;  // re-register asked
      absl::Duration delay = backoff.Next();
      TL_LOG(WARNING) << "LeaseJob failed: " << FromGrpcStatus(status) << "; retrying in "
                      << absl::FormatDuration(absl::Trunc(delay, absl::Milliseconds(1)));
      SleepUnless(&shutting_down_, delay);
      continue;
    }
    backoff.Reset();
    if (!response.known()) {
      TL_LOG(WARNING) << "the server does not know this worker: re-registering";
      absl::MutexLock lock(&mu_);
      needs_register_ = true;
      continue;
    }
    if (!response.has_lease()) continue;

    const tuneledger::v1::Lease& lease = response.lease();
    TL_LOG(INFO) << "leased job " << lease.job_id() << " attempt " << lease.attempt();
    absl::Duration report_interval;
    {
      absl::MutexLock lock(&mu_);
      report_interval = report_interval_;
    }
    AttemptRunner runner(options_, stub_.get(), worker_id(), lease, report_interval, lease_start);
    {
      absl::MutexLock lock(&mu_);
      attempt_ = &runner;
      // A shutdown that came while the lease was in flight: hand the job straight back.
      if (shutting_down_) runner.Preempt();
    }
    runner.Run();
    {
      absl::MutexLock lock(&mu_);
      attempt_ = nullptr;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    heartbeats_stopped_ = true;
  }
  heartbeat_thread_.join();
  Deregister();
  TL_LOG(INFO) << "worker stopped";
  return absl::OkStatus();
}

}  // namespace tuneledger::worker
