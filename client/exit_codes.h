// tunectl's exit codes, in one place (also printed by `tunectl --help`).
//
//   0  success (for `watch`: the job SUCCEEDED)
//   1  error: the server answered with an error, or it could not be reached
//   2  usage error: unknown command or flag, bad flag value, missing argument
//   3  `watch`: the job ended FAILED
//   4  `watch`: the job ended CANCELLED (by the user, the budget policy, or attempts exhausted)
//   5  `watch`: the job ended in a state this tunectl does not know
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_CLIENT_EXIT_CODES_H_
#define TUNELEDGER_CLIENT_EXIT_CODES_H_

#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger::client {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,
  kExitUsage = 2,
  kExitJobFailed = 3,
  kExitJobCancelled = 4,
  kExitJobUnknownState = 5,
};

// True for SUCCEEDED, FAILED and CANCELLED: the states a job never leaves.
bool IsFinalState(tuneledger::v1::Job::State state);

// The exit code of `watch` for a job that ended in `state` (a final state).
ExitCode ExitCodeForFinalState(tuneledger::v1::Job::State state);

// The text block listing the codes, for --help.
const char* ExitCodeHelp();

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_EXIT_CODES_H_
