#include "client/exit_codes.h"

namespace tuneledger::client {

using tuneledger::v1::Job;

bool IsFinalState(Job::State state) {
  return state == Job::SUCCEEDED || state == Job::FAILED || state == Job::CANCELLED;
}

ExitCode ExitCodeForFinalState(Job::State state) {
  switch (state) {
    case Job::SUCCEEDED:
      return kExitOk;
    case Job::FAILED:
      return kExitJobFailed;
    case Job::CANCELLED:
      return kExitJobCancelled;
    default:
      return kExitJobUnknownState;
  }
}

const char* ExitCodeHelp() {
  return "Exit codes:\n"
         "  0  success (watch: the job SUCCEEDED)\n"
         "  1  error: the server answered with an error or could not be reached\n"
         "  2  usage error: unknown command or flag, bad flag value, missing argument\n"
         "  3  watch: the job ended FAILED\n"
         "  4  watch: the job ended CANCELLED (user, budget policy or attempts exhausted)\n"
         "  5  watch: the job ended in a state this tunectl does not know\n";
}

}  // namespace tuneledger::client
