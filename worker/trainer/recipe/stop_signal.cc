#include "worker/trainer/recipe/stop_signal.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>

#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void HandleStopSignal(int /*signal*/) {
  stop_requested.store(true, std::memory_order_relaxed);
}

}  // namespace

void InstallStopSignalHandlers() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = HandleStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  for (int signal : {SIGTERM, SIGINT}) {
    if (sigaction(signal, &action, nullptr) != 0) {
      throw TrainError(std::string("sigaction failed: ") + std::strerror(errno));
    }
  }
}

bool StopRequested() { return stop_requested.load(std::memory_order_relaxed); }

void RequestStop() { stop_requested.store(true, std::memory_order_relaxed); }

void ClearStopRequest() { stop_requested.store(false, std::memory_order_relaxed); }

void SleepUntilStopOr(std::chrono::steady_clock::time_point deadline) {
  constexpr auto kSlice = std::chrono::milliseconds(10);
  while (!StopRequested()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(deadline - now, kSlice));
  }
}

}  // namespace tuneledger::train
