// How glibc's malloc treats the large host buffers of a CPU training step.
//
// By default glibc serves a request above its mmap threshold (128 KiB at first, raised as
// mmapped buffers are freed, at most 32 MiB) with a fresh mmap, and returns the top of its heap
// to the kernel once 128 KiB of it are free. A CPU step allocates and frees activations of
// megabytes to hundreds of megabytes (logits: B x T x vocab floats) every layer, so each one came
// back as new pages that the kernel zeroes on first touch: clear_page was the largest kernel
// entry in perf's profile of the 110M step, and the step ran 20-25% slower than with the
// buffers kept for reuse (bench/README.md, "Host allocator").
//
// Thread safety: call once, early, before other threads allocate (mallopt is not meant to race
// with malloc).
#ifndef TUNELEDGER_WORKER_TRAINER_RECIPE_HOST_ALLOCATOR_H_
#define TUNELEDGER_WORKER_TRAINER_RECIPE_HOST_ALLOCATOR_H_

namespace tuneledger::train {

// Serves requests up to 1 GiB from the heap and keeps freed heap memory in the process (up to
// 2 GiB at its top) for the next allocation. The process's peak RSS grows a little (the 110M
// step: about 7%); freed memory is not returned before exit. For CPU training: a CUDA run's host
// memory is the model load's, which it should give back. Returns false when glibc refused a
// setting (then nothing else changed for it).
bool KeepHostBuffersForReuse();

}  // namespace tuneledger::train

#endif  // TUNELEDGER_WORKER_TRAINER_RECIPE_HOST_ALLOCATOR_H_
