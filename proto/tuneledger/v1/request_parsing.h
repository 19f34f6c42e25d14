// A request that does not parse is INVALID_ARGUMENT naming the field, not INTERNAL with an empty
// message.
//
// gRPC's protobuf parsing (grpcpp/impl/codegen/proto_utils.h) answers a message that does not
// parse with INTERNAL and the message's InitializationErrorString(), which proto3 leaves empty.
// The usual cause is a `string` field that is not valid UTF-8, which proto3 refuses. The
// SerializationTraits below parse the same way; when that fails they find the first such field
// and say so: "spec.name: must be valid UTF-8" (field paths as the job spec validator spells
// them), INVALID_ARGUMENT for a request of one of our services, INTERNAL for anything else (a
// response the client cannot read is no fault of its arguments).
//
// Which SerializationTraits gRPC uses: unary calls go through SerializationTraits<MessageLite>
// (the generated handlers and stubs name MessageLite as their base types, to save code), streams
// through their message type. So MessageLite is specialized, and so are the two streamed request
// types. The generated *.grpc.pb.h include this header (protoc's additional_header_includes, see
// proto/CMakeLists.txt), so every translation unit that makes or serves a call sees these
// specializations before it uses them.
//
// Thread safety: stateless.
#ifndef TUNELEDGER_PROTO_TUNELEDGER_V1_REQUEST_PARSING_H_
#define TUNELEDGER_PROTO_TUNELEDGER_V1_REQUEST_PARSING_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message_lite.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/codegen/serialization_traits.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <string>

#include "tuneledger/v1/jobs.pb.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger {

// Why `bytes` do not parse as a `type` message: "<field path>: must be valid UTF-8" for the
// first string field that is not, else that the bytes are no such message at all.
std::string WhyMessageDoesNotParse(const std::string& bytes,
                                   const google::protobuf::Descriptor& type);

// Parses `buffer` into `message` as gRPC does; when it does not parse, WhyMessageDoesNotParse as
// INVALID_ARGUMENT for the request type of a method of a service beside it, else as INTERNAL.
grpc::Status DeserializeNamingTheField(grpc::ByteBuffer* buffer,
                                       google::protobuf::MessageLite* message);

template <class Message>
class FieldNamingSerializationTraits {
 public:
  static grpc::Status Serialize(const google::protobuf::MessageLite& message,
                                grpc::ByteBuffer* buffer, bool* own_buffer) {
    return grpc::GenericSerialize<grpc::ProtoBufferWriter, Message>(message, buffer, own_buffer);
  }
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer,
                                  google::protobuf::MessageLite* message) {
    return DeserializeNamingTheField(buffer, message);
  }
};

}  // namespace tuneledger

namespace grpc {
template <>
class SerializationTraits<protobuf::MessageLite>
    : public ::tuneledger::FieldNamingSerializationTraits<protobuf::MessageLite> {};
template <>
class SerializationTraits<::tuneledger::v1::WatchJobRequest>
    : public ::tuneledger::FieldNamingSerializationTraits<::tuneledger::v1::WatchJobRequest> {};
template <>
class SerializationTraits<::tuneledger::v1::ProgressReport>
    : public ::tuneledger::FieldNamingSerializationTraits<::tuneledger::v1::ProgressReport> {};
}  // namespace grpc

#endif  // TUNELEDGER_PROTO_TUNELEDGER_V1_REQUEST_PARSING_H_
