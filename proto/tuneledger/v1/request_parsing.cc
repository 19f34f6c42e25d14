#include "tuneledger/v1/request_parsing.h"

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/support/slice.h>

#include <map>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/bounded_text.h"
#include "base/grpc_status.h"
#include "base/utf8.h"

namespace tuneledger {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::UnknownField;
using ::google::protobuf::UnknownFieldSet;

// Messages nest this deep at most before the search gives up (protobuf's own limit is 100).
constexpr int kMaxDepth = 32;

std::optional<std::string> FindNonUtf8Field(const UnknownFieldSet& fields, const Descriptor& type,
                                            const std::string& prefix, int depth);

// The path of the first string that is not UTF-8 in one value of `field`, found at `path`.
std::optional<std::string> FindNonUtf8Value(const FieldDescriptor& field, const UnknownField& raw,
                                            const std::string& path, int depth) {
  if (raw.type() != UnknownField::TYPE_LENGTH_DELIMITED) return std::nullopt;
  if (field.type() == FieldDescriptor::TYPE_STRING) {
    if (Utf8Length(raw.length_delimited()).has_value()) return std::nullopt;
    return path;
  }
  if (field.type() != FieldDescriptor::TYPE_MESSAGE || depth >= kMaxDepth) return std::nullopt;
  UnknownFieldSet inner;
  if (!inner.ParseFromString(raw.length_delimited())) return std::nullopt;
  if (!field.is_map()) return FindNonUtf8Field(inner, *field.message_type(), path + ".", depth + 1);
  // A map entry is a message {key = 1, value = 2}; spelled like the validator spells map values:
  // spec.labels["team"].
  const FieldDescriptor& value_field = *field.message_type()->map_value();
  const UnknownField* key = nullptr;
  const UnknownField* value = nullptr;
  for (int i = 0; i < inner.field_count(); ++i) {
    if (inner.field(i).number() == 1) key = &inner.field(i);
    if (inner.field(i).number() == 2) value = &inner.field(i);
  }
  std::string key_text;
  if (key != nullptr && key->type() == UnknownField::TYPE_LENGTH_DELIMITED) {
    if (!Utf8Length(key->length_delimited()).has_value()) return path + " (a key)";
    key_text = "\"" + absl::CEscape(BoundedText(key->length_delimited(), 64)) + "\"";
  } else if (key != nullptr && key->type() == UnknownField::TYPE_VARINT) {
    key_text = absl::StrCat(key->varint());
  }
  if (value == nullptr) return std::nullopt;
  return FindNonUtf8Value(value_field, *value, absl::StrCat(path, "[", key_text, "]"), depth + 1);
}

std::optional<std::string> FindNonUtf8Field(const UnknownFieldSet& fields, const Descriptor& type,
                                            const std::string& prefix, int depth) {
  std::map<int, int> occurrences;  // field number -> values seen so far (a repeated field's index)
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& raw = fields.field(i);
    const int index = occurrences[raw.number()]++;
    const FieldDescriptor* field = type.FindFieldByNumber(raw.number());
    if (field == nullptr) continue;  // unknown fields are kept as bytes, never checked
    std::string path = prefix + field->name();
    if (field->is_repeated() && !field->is_map()) absl::StrAppend(&path, "[", index, "]");
    if (std::optional<std::string> bad = FindNonUtf8Value(*field, raw, path, depth)) return bad;
  }
  return std::nullopt;
}

// True when `type` is what a method of a service in its .proto file takes.
bool IsRequestType(const Descriptor& type) {
  const google::protobuf::FileDescriptor& file = *type.file();
  for (int s = 0; s < file.service_count(); ++s) {
    for (int m = 0; m < file.service(s)->method_count(); ++m) {
      if (file.service(s)->method(m)->input_type() == &type) return true;
    }
  }
  return false;
}

}  // namespace

std::string WhyMessageDoesNotParse(const std::string& bytes, const Descriptor& type) {
  UnknownFieldSet fields;
  if (fields.ParseFromString(bytes)) {
    if (std::optional<std::string> path = FindNonUtf8Field(fields, type, "", 0)) {
      return *path + ": must be valid UTF-8";
    }
  }
  return absl::StrCat("not a ", type.full_name(), " message (", bytes.size(),
                      " bytes that do not parse)");
}

grpc::Status DeserializeNamingTheField(grpc::ByteBuffer* buffer,
                                       google::protobuf::MessageLite* message) {
  {
    grpc::ProtoBufferReader reader(buffer);
    if (!reader.status().ok()) return reader.status();
    if (message->ParseFromZeroCopyStream(&reader)) {
      buffer->Clear();
      return grpc::Status::OK;
    }
  }
  // The slow path, only for a message that is refused: its bytes once more, in one piece.
  std::string bytes;
  grpc::Slice slice;
  if (buffer->DumpToSingleSlice(&slice).ok()) {
    bytes.assign(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  buffer->Clear();
  const Descriptor* type =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
          message->GetTypeName());
  if (type == nullptr) {
    return ToGrpcStatus(absl::InternalError(
        absl::StrCat("not a ", message->GetTypeName(), " message (", bytes.size(), " bytes)")));
  }
  const std::string why = WhyMessageDoesNotParse(bytes, *type);
  return ToGrpcStatus(IsRequestType(*type) ? absl::InvalidArgumentError(why)
                                           : absl::InternalError(why));
}

}  // namespace tuneledger
