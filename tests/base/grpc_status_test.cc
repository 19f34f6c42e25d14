#include "base/grpc_status.h"

#include <cstddef>
#include <iterator>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tuneledger {
namespace {

using ::tuneledger::testing::StatusIs;

// Every absl code beside the gRPC code it must become and the name the metrics label carries.
// Written out, not derived, so that a mapping that is off by one or falls back to a cast fails.
struct CodePair {
  absl::StatusCode absl_code;
  grpc::StatusCode grpc_code;
  const char* name;
};

constexpr CodePair kEveryCode[] = {
    {absl::StatusCode::kOk, grpc::StatusCode::OK, "OK"},
    {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED, "CANCELLED"},
    {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN, "UNKNOWN"},
    {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
    {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
    {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND, "NOT_FOUND"},
    {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS, "ALREADY_EXISTS"},
    {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED"},
    {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED,
     "RESOURCE_EXHAUSTED"},
    {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION,
     "FAILED_PRECONDITION"},
    {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED, "ABORTED"},
    {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE, "OUT_OF_RANGE"},
    {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED, "UNIMPLEMENTED"},
    {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL, "INTERNAL"},
    {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE"},
    {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS, "DATA_LOSS"},
    {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED, "UNAUTHENTICATED"},
};

TEST(GrpcStatusTest, TheTableCoversEveryAbslCode) {
  // absl's codes are 0..16 (google.rpc.Code); a code added to absl must be added here too.
  ASSERT_EQ(std::size(kEveryCode), 17u);
  for (size_t i = 0; i < std::size(kEveryCode); ++i) {
    EXPECT_EQ(static_cast<int>(kEveryCode[i].absl_code), static_cast<int>(i));
  }
}

TEST(GrpcStatusTest, EveryAbslCodeRoundTripsWithItsMessage) {
  for (const CodePair& pair : kEveryCode) {
    SCOPED_TRACE(pair.name);
    const absl::Status original(pair.absl_code, "budget_usd: must be > 0, got -3");

    const grpc::Status on_the_wire = ToGrpcStatus(original);
    EXPECT_EQ(on_the_wire.error_code(), pair.grpc_code);
    if (pair.absl_code == absl::StatusCode::kOk) {
      EXPECT_TRUE(on_the_wire.ok());  // an OK absl::Status carries no message
    } else {
      EXPECT_EQ(on_the_wire.error_message(), "budget_usd: must be > 0, got -3");
    }

    const absl::Status back = FromGrpcStatus(on_the_wire);
    EXPECT_EQ(back, original);
    if (pair.absl_code != absl::StatusCode::kOk) {
      EXPECT_THAT(back, StatusIs(pair.absl_code, "budget_usd: must be > 0, got -3"));
    }
  }
}

TEST(GrpcStatusTest, EveryGrpcCodeRoundTripsWithItsMessage) {
  for (const CodePair& pair : kEveryCode) {
    SCOPED_TRACE(pair.name);
    const grpc::Status original(pair.grpc_code,
                                pair.grpc_code == grpc::StatusCode::OK ? "" : "job 404: not found");
    const absl::Status in_the_core = FromGrpcStatus(original);
    EXPECT_EQ(in_the_core.code(), pair.absl_code);
    const grpc::Status back = ToGrpcStatus(in_the_core);
    EXPECT_EQ(back.error_code(), original.error_code());
    EXPECT_EQ(back.error_message(), original.error_message());
  }
}

// grpc::StatusCode has no fixed underlying type, so its values are only -32..31 (the bits its
// enumerators DO_NOT_USE = -1 ... UNAUTHENTICATED = 16 need): casting 42 to it is undefined
// behaviour (UBSan in tests/sanitizers.sh: "load of value 42, which is not a valid value for type
// 'StatusCode'"). 20 is a valid value that no enumerator names. absl::StatusCode is an enum class
// over int, where 42 is fine.
constexpr int kUnnamedGrpcCode = 20;

TEST(GrpcStatusTest, CodesNeitherLibraryKnowsBecomeUnknownAndKeepTheMessage) {
  EXPECT_EQ(ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(42), "odd")).error_code(),
            grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(42), "odd")).error_message(),
            "odd");
  EXPECT_THAT(FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(kUnnamedGrpcCode), "odd")),
              StatusIs(absl::StatusCode::kUnknown, "odd"));
}

TEST(GrpcStatusTest, CodeNamesAreTheCanonicalNames) {
  for (const CodePair& pair : kEveryCode) {
    EXPECT_EQ(GrpcCodeName(pair.grpc_code), pair.name);
    EXPECT_EQ(GrpcCodeName(pair.grpc_code), absl::StatusCodeToString(pair.absl_code));
  }
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(kUnnamedGrpcCode)), "UNKNOWN");
}

TEST(GrpcStatusTextTest, NamesTheCodeItsNumberAndTheMessage) {
  EXPECT_EQ(GrpcStatusText(grpc::Status(grpc::StatusCode::NOT_FOUND, "job 404 not found")),
            "NOT_FOUND (5): job 404 not found");
  EXPECT_EQ(GrpcStatusText(grpc::Status::OK), "OK (0): ");
}

}  // namespace
}  // namespace tuneledger
