// Facts about the job lifecycle (README.md "Job lifecycle and cost") that several rooms ask
// about.
// Thread safety: pure functions.
#ifndef TUNELEDGER_SERVER_CORE_JOB_STATES_H_
#define TUNELEDGER_SERVER_CORE_JOB_STATES_H_

#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

// SUCCEEDED, FAILED and CANCELLED: nothing changes a job after it reaches one of these.
inline bool IsFinalState(v1::Job::State state) {
  return state == v1::Job::SUCCEEDED || state == v1::Job::FAILED || state == v1::Job::CANCELLED;
}

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_JOB_STATES_H_
