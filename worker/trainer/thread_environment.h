// The threading environment of the trainer's executables, fixed before LibTorch starts.
//
// LibTorch's OpenMP threads spin after every parallel region (libgomp's default wait policy)
// and OpenBLAS runs its own spinning thread pool next to them. On a 2-core machine that is shared
// with anything else, the spinners steal the cores the real work needs: measured here on the
// bundled model, LoRA training ran at ~350 tokens/s with the defaults and at ~4,000 tokens/s with
// OMP_WAIT_POLICY=PASSIVE and OPENBLAS_NUM_THREADS=1 (LibTorch's own intra-op threads, set by
// --threads, still use every core). Both libraries read these variables only when they load,
// so main() sets whichever are unset and re-executes itself once (same pid, same file
// descriptors) before doing anything else. A value the user set is kept.
//
// Thread safety: call first thing in main(), before any thread exists.
#ifndef TUNELEDGER_WORKER_TRAINER_THREAD_ENVIRONMENT_H_
#define TUNELEDGER_WORKER_TRAINER_THREAD_ENVIRONMENT_H_

namespace tuneledger::train {

// Returns only when the environment is already right or re-executing failed (a note goes to
// stderr and the process continues with the defaults).
void EnsureThreadEnvironment(char** argv);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_THREAD_ENVIRONMENT_H_
