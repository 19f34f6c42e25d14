#include "worker/trainer/thread_environment.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace tuneledger::train {

void EnsureThreadEnvironment(char** argv) {
  bool changed = false;
  for (const auto& [name, value] :
       {std::pair{"OMP_WAIT_POLICY", "PASSIVE"}, std::pair{"OPENBLAS_NUM_THREADS", "1"}}) {
    if (std::getenv(name) == nullptr) {
      ::setenv(name, value, /*overwrite=*/0);
      changed = true;
    }
  }
  if (!changed) return;
  ::execv("/proc/self/exe", argv);
  std::cerr << "note: cannot re-execute with OMP_WAIT_POLICY/OPENBLAS_NUM_THREADS set ("
            << std::strerror(errno) << "); continuing with the libraries' defaults\n";
}

}  // namespace tuneledger::train
