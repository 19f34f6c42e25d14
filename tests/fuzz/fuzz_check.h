// FUZZ_CHECK: the property checks of the fuzz targets in tests/fuzz/. A broken property aborts
// with the condition and its place, which libFuzzer reports as a crash and saves the input
// (tests/fuzz/README.md says what to do with it); the replay driver (replay_main.cc) fails the
// same way.
#ifndef TUNELEDGER_TESTS_FUZZ_FUZZ_CHECK_H_
#define TUNELEDGER_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)

#endif  // TUNELEDGER_TESTS_FUZZ_FUZZ_CHECK_H_
