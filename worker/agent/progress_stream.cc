#include "worker/agent/progress_stream.h"

#include <utility>

#include "base/grpc_status.h"
#include "base/log.h"

namespace tuneledger::worker {

using ::tuneledger::v1::ProgressReport;
using ::tuneledger::v1::WorkerCommand;

struct ProgressStream::Call {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriterInterface<ProgressReport, WorkerCommand>> stream;
  std::thread reader;
  absl::Notification reader_done;
};

ProgressStream::ProgressStream(tuneledger::v1::WorkerService::StubInterface* stub,
                               CommandHandler on_command, RevokedHandler on_revoked)
    : stub_(stub), on_command_(std::move(on_command)), on_revoked_(std::move(on_revoked)) {}

ProgressStream::~ProgressStream() { Close(absl::Seconds(1)); }

bool ProgressStream::Open() {
  if (absl::Now() < next_open_) return false;
  auto call = std::make_unique<Call>();
  call->stream = stub_->ReportProgress(&call->context);
  if (call->stream == nullptr) {
    next_open_ = absl::Now() + reopen_backoff_.Next();
    return false;
  }
  Call* raw = call.get();
  raw->reader = std::thread([this, raw] {
    WorkerCommand command;
    while (raw->stream->Read(&command)) on_command_(command);
    raw->reader_done.Notify();
  });
  call_ = std::move(call);
  return true;
}

bool ProgressStream::Send(const ProgressReport& report) {
  if (call_ == nullptr && !Open()) return false;
  if (call_->stream->Write(report)) {
    reopen_backoff_.Reset();
    return true;
  }
  // The call is over (server gone or it ended the call): collect its status, reopen later.
  EndCall(absl::Seconds(2));
  next_open_ = absl::Now() + reopen_backoff_.Next();
  return false;
}

void ProgressStream::Close(absl::Duration drain) {
  if (call_ != nullptr) EndCall(drain);
}

void ProgressStream::EndCall(absl::Duration drain) {
  call_->stream->WritesDone();
  if (!call_->reader_done.WaitForNotificationWithTimeout(drain)) call_->context.TryCancel();
  call_->reader.join();
  grpc::Status status = call_->stream->Finish();
  call_.reset();
  if (status.ok()) return;
  TL_LOG(WARNING) << "ReportProgress ended: " << FromGrpcStatus(status);
  switch (status.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::PERMISSION_DENIED:
      on_revoked_(status);
      break;
    default:
      break;
  }
}

}  // namespace tuneledger::worker
