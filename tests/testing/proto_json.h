// Parses what `tunectl --output json` prints (the proto JSON mapping) into a message, for tests
// that drive tunectl; fields the message does not know are ignored, and a parse failure fails
// the test, naming the text.
#ifndef TUNELEDGER_TESTS_TESTING_PROTO_JSON_H_
#define TUNELEDGER_TESTS_TESTING_PROTO_JSON_H_

#include <google/protobuf/util/json_util.h>

#include <string>

#include "gtest/gtest.h"

namespace tuneledger::testing {

template <typename Message>
Message ParseProtoJson(const std::string& json) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message, options);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in: " << json;
  return message;
}

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_TESTING_PROTO_JSON_H_
