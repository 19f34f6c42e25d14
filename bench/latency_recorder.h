// Latency percentiles of one benchmark thread's iterations, reported as Google Benchmark
// counters (microseconds). Threads report their own percentiles and the counter averages them
// over threads (kAvgThreads): with threads doing the same work that is close to the pooled
// percentile, and it is what the README calls p50/p99.
// Thread safety: a LatencyRecorder belongs to one benchmark thread.
#ifndef TUNELEDGER_BENCH_LATENCY_RECORDER_H_
#define TUNELEDGER_BENCH_LATENCY_RECORDER_H_

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

namespace tuneledger::bench {

class LatencyRecorder {
 public:
  using Clock = std::chrono::steady_clock;

  void Add(Clock::duration latency) {
    micros_.push_back(std::chrono::duration<double, std::micro>(latency).count());
  }

  // Sets p50_us and p99_us on `state` (nothing when no sample was taken).
  void Report(benchmark::State& state) {
    if (micros_.empty()) return;
    state.counters["p50_us"] = benchmark::Counter(Quantile(0.50), benchmark::Counter::kAvgThreads);
    state.counters["p99_us"] = benchmark::Counter(Quantile(0.99), benchmark::Counter::kAvgThreads);
  }

 private:
  // Nearest-rank quantile q in [0,1].
  double Quantile(double q) {
    const size_t rank = std::min(micros_.size() - 1, static_cast<size_t>(q * micros_.size()));
    std::nth_element(micros_.begin(), micros_.begin() + rank, micros_.end());
    return micros_[rank];
  }

  std::vector<double> micros_;
};

}  // namespace tuneledger::bench

#endif  // TUNELEDGER_BENCH_LATENCY_RECORDER_H_
