// The threading environment of the trainer's executables, fixed before LibTorch starts.
//
// LibTorch's OpenMP threads spin after every parallel region (libgomp's default wait policy)
// while OpenBLAS runs its own thread pool next to them, so the spinners steal the cores the
// GEMMs need. bench/README.md measured a ~110M-parameter LoRA step on 2 cores at 136 tokens/s
// with the defaults and 168 with OMP_WAIT_POLICY=PASSIVE (eager PyTorch: 138 and 171); also
// forcing OPENBLAS_NUM_THREADS=1 halved the GEMM peak and cost a third (115), so BLAS keeps its
// threads. libgomp reads the variable only when it loads, so main() sets it when unset and
// re-executes itself once (same pid, same file descriptors) before doing anything else. A value
// the user set is kept.
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
