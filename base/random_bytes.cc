#include "base/random_bytes.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tuneledger {

absl::StatusOr<std::string> RandomBytes(size_t count) {
  std::string bytes(count, '\0');
  size_t filled = 0;
  while (filled < count) {
    const ssize_t got = getrandom(bytes.data() + filled, count - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    filled += static_cast<size_t>(got);
  }
  return bytes;
}

absl::StatusOr<std::string> RandomHexToken(size_t bytes) {
  absl::StatusOr<std::string> random = RandomBytes(bytes);
  if (!random.ok()) return random.status();
  return absl::BytesToHexString(*random);
}

}  // namespace tuneledger
