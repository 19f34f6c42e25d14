// The ONE mapping from the core's absl::Status to a gRPC status. The core chooses codes by
// STYLE.md's rules (INVALID_ARGUMENT names the field, NOT_FOUND for unknown ids,
// FAILED_PRECONDITION for a transition that is not allowed, ...); this keeps code and message.
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_SERVER_SERVICE_GRPC_STATUS_H_
#define TUNELEDGER_SERVER_SERVICE_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace tuneledger {

grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "NOT_FOUND", ...: the label of the RPC latency histogram.
std::string GrpcCodeName(grpc::StatusCode code);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_SERVICE_GRPC_STATUS_H_
