// The ONE conversion between absl::Status and grpc::Status, both ways, for the server's
// handlers, the worker agent and the client.
//
// The core returns absl::Status and chooses its codes by these rules, which the mapping keeps
// unchanged on the wire:
//   INVALID_ARGUMENT     bad input; the message names the field and the value
//                        ("budget_usd: must be > 0, got -3")
//   NOT_FOUND            an unknown id
//   FAILED_PRECONDITION  a state transition that is not allowed (e.g. cancelling a finished job)
//   UNAUTHENTICATED      no token
//   PERMISSION_DENIED    a wrong token, or a job of another tenant
//   UNAVAILABLE          only where a retry can succeed (e.g. SQLite is locked by another
//                        process)
// Both functions map code by code (the two enums share google.rpc.Code's numbering, but neither
// library promises it) and keep the message; an unknown code becomes UNKNOWN.
//
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_BASE_GRPC_STATUS_H_
#define TUNELEDGER_BASE_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace tuneledger {

// absl -> gRPC: what a handler returns.
grpc::Status ToGrpcStatus(const absl::Status& status);

// gRPC -> absl: what a client or the worker agent makes of an RPC's result.
absl::Status FromGrpcStatus(const grpc::Status& status);

// "OK", "NOT_FOUND", ...: the label of the RPC latency histogram, and how logs name a code.
std::string GrpcCodeName(grpc::StatusCode code);

// "NAME (N): message" of a gRPC status, e.g. "NOT_FOUND (5): job 404 not found", for logs and
// test failure messages.
std::string GrpcStatusText(const grpc::Status& status);

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_GRPC_STATUS_H_
