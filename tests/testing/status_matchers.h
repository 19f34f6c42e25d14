// The project's gtest helpers for absl::Status (Debian's Abseil has no status_matchers.h).
//
//   EXPECT_OK(status_or_statusor);  ASSERT_OK(...);
//   EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
//   EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("budget_usd")));
// Failures print the code and the full message.
#ifndef TUNELEDGER_TESTS_TESTING_STATUS_MATCHERS_H_
#define TUNELEDGER_TESTS_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tuneledger::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER_P2(StatusIsImpl, code, message_matcher, "") {
  const absl::Status& status = ::tuneledger::testing::GetStatus(arg);
  *result_listener << "status is " << status.ToString();
  if (status.code() != code) return false;
  return ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

inline auto StatusIs(absl::StatusCode code) { return StatusIsImpl(code, ::testing::_); }
template <typename MessageMatcher>
auto StatusIs(absl::StatusCode code, MessageMatcher message_matcher) {
  return StatusIsImpl(code, ::testing::MatcherCast<std::string>(message_matcher));
}

}  // namespace tuneledger::testing

#define EXPECT_OK(expr)                                                 \
  do {                                                                  \
    const ::absl::Status tl_test_status_ = ::tuneledger::testing::GetStatus(expr); \
    EXPECT_TRUE(tl_test_status_.ok()) << tl_test_status_.ToString();    \
  } while (false)

#define ASSERT_OK(expr)                                                 \
  do {                                                                  \
    const ::absl::Status tl_test_status_ = ::tuneledger::testing::GetStatus(expr); \
    ASSERT_TRUE(tl_test_status_.ok()) << tl_test_status_.ToString();    \
  } while (false)

#endif  // TUNELEDGER_TESTS_TESTING_STATUS_MATCHERS_H_
