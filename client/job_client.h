// JobClient: the C++ client of tuneledger.v1.JobService that tunectl uses.
//
// Every unary call carries a deadline (Options::deadline) and, when a token is configured, the
// metadata "authorization: Bearer <token>". Results are absl::StatusOr, converted from
// grpc::Status by the project's one FromGrpcStatus() (base/grpc_status.h). WatchJob has no
// deadline (a job may train for days) but can be cancelled from any thread with CancelWatch().
//
// Thread safety: all methods may be called concurrently; each call uses its own ClientContext.
// CancelWatch() is the one method meant to be called while another thread is inside Watch().
#ifndef TUNELEDGER_CLIENT_JOB_CLIENT_H_
#define TUNELEDGER_CLIENT_JOB_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/tls_credentials.h"
#include "grpcpp/grpcpp.h"
#include "tuneledger/v1/jobs.grpc.pb.h"

namespace tuneledger::client {

class JobClient {
 public:
  struct Options {
    std::string address = "127.0.0.1:50051";      // HOST:PORT of tuneledger-server
    std::string token;                            // empty = send no authorization metadata
    absl::Duration deadline = absl::Seconds(30);  // per unary call
    TlsClientPem tls;                             // not enabled(): plaintext
  };

  // Dials options.address, over TLS when options.tls is enabled() (the connection is made
  // lazily).
  explicit JobClient(Options options);
  // Uses an existing channel (tests); options.address is ignored.
  JobClient(std::shared_ptr<grpc::ChannelInterface> channel, Options options);

  JobClient(const JobClient&) = delete;
  JobClient& operator=(const JobClient&) = delete;

  const Options& options() const { return options_; }

  absl::StatusOr<tuneledger::v1::SubmitJobResponse> Submit(const tuneledger::v1::JobSpec& spec);
  // What the job would cost; nothing is submitted.
  absl::StatusOr<tuneledger::v1::JobEstimate> Estimate(const tuneledger::v1::JobSpec& spec);
  absl::StatusOr<tuneledger::v1::Job> Get(const std::string& id);
  // Follows next_page_token until the last page; returns every job in server order.
  absl::StatusOr<std::vector<tuneledger::v1::Job>> ListAll(
      const std::vector<tuneledger::v1::Job::State>& states, int page_size = 0);
  absl::StatusOr<tuneledger::v1::ListJobsResponse> ListPage(
      const tuneledger::v1::ListJobsRequest& request);
  absl::StatusOr<tuneledger::v1::Job> Cancel(const std::string& id, const std::string& message);
  absl::StatusOr<std::vector<tuneledger::v1::JobEvent>> ListEvents(const std::string& id);
  absl::StatusOr<tuneledger::v1::ProgressHistory> GetProgressHistory(const std::string& id);
  absl::StatusOr<tuneledger::v1::CostReport> GetCostReport(const std::string& id);
  absl::StatusOr<std::vector<tuneledger::v1::Worker>> ListWorkers();
  // The caller's finished jobs carrying every label given, cost against eval loss.
  absl::StatusOr<tuneledger::v1::ParetoFront> GetParetoFront(
      const std::map<std::string, std::string>& labels);

  // Reads the WatchJob stream, calling on_update for each message, until the server ends the
  // stream, on_update returns false, or CancelWatch() is called. Returns the stream's final
  // status: OK when the server ended it cleanly, CANCELLED after CancelWatch() or when
  // on_update stopped it, otherwise the error (e.g. UNAVAILABLE when the connection broke).
  absl::Status Watch(const std::string& id,
                     const std::function<bool(const tuneledger::v1::WatchJobResponse&)>& on_update);
  // Cancels the Watch() in progress, if any (and only that one).
  void CancelWatch();

 private:
  // Prepares a context: the authorization metadata and, for unary calls, the deadline.
  void Prepare(grpc::ClientContext& context, bool with_deadline) const;

  // Every unary call: a fresh context with token and deadline, the call, the status conversion.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Unary(grpc::Status (tuneledger::v1::JobService::Stub::*method)(
                                     grpc::ClientContext*, const Request&, Response*),
                                 const Request& request);

  const Options options_;
  std::unique_ptr<tuneledger::v1::JobService::Stub> stub_;

  absl::Mutex watch_mu_;
  // The context of the Watch() in progress; set and cleared by Watch(), read by CancelWatch().
  grpc::ClientContext* watch_context_ ABSL_GUARDED_BY(watch_mu_) = nullptr;
  // Set by CancelWatch() when it finds no watch to cancel yet, so a Watch() starting right
  // after is cancelled too; cleared when a Watch() returns.
  bool watch_cancel_requested_ ABSL_GUARDED_BY(watch_mu_) = false;
};

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_JOB_CLIENT_H_
