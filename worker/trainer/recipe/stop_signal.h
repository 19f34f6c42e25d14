// SIGTERM / SIGINT as a request to stop between steps.
//
// The handler only sets a lock-free atomic flag (async-signal-safe); the training loop checks
// StopRequested() after each optimizer step, finishes that step, writes a checkpoint, prints a
// `stopped` line and exits 75. The handlers reset themselves after the first signal
// (SA_RESETHAND), so a second Ctrl-C kills the process at once.
//
// This is the trainer's one piece of process-global state: a signal handler can reach nothing
// else. Thread safety: all functions may be called from any thread.
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_STOP_SIGNAL_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_STOP_SIGNAL_H_

#include <chrono>

namespace tuneledger::train {

// Installs the handlers (idempotent). Throws TrainError if sigaction fails.
void InstallStopSignalHandlers();

bool StopRequested();

// Sets the flag as the handler would (tests; also usable by an in-process supervisor).
void RequestStop();

// Clears the flag (tests).
void ClearStopRequest();

// Sleeps until `deadline` in short slices, waking early when a stop is requested (the pacing of
// TUNELEDGER_TRAIN_MIN_STEP_SECONDS).
void SleepUntilStopOr(std::chrono::steady_clock::time_point deadline);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_STOP_SIGNAL_H_
