#include "worker/trainer/thread_environment.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace tuneledger::train {

void EnsureThreadEnvironment(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;  // the user's choice stands
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  ::execv("/proc/self/exe", argv);
  std::cerr << "note: cannot re-execute with OMP_WAIT_POLICY set (" << std::strerror(errno)
            << "); continuing with the libraries' defaults\n";
}

}  // namespace tuneledger::train
