// A path inside the source tree (models/, tests/ data) for tests of every area; tuneledger::testing
// defines TUNELEDGER_SOURCE_DIR.
#ifndef TUNELEDGER_TESTS_TESTING_SOURCE_PATH_H_
#define TUNELEDGER_TESTS_TESTING_SOURCE_PATH_H_

#include <string>

namespace tuneledger::testing {

inline std::string SourcePath(const std::string& relative) {
  return std::string(TUNELEDGER_SOURCE_DIR) + "/" + relative;
}

}  // namespace tuneledger::testing

#endif  // TUNELEDGER_TESTS_TESTING_SOURCE_PATH_H_
