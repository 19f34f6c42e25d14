// Secret random bytes from the kernel (getrandom(2)): keys and tokens.
// Thread safety: safe from any thread.
#ifndef TUNELEDGER_BASE_RANDOM_BYTES_H_
#define TUNELEDGER_BASE_RANDOM_BYTES_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace tuneledger {

// `count` bytes; INTERNAL when the kernel gives none (never silently weaker randomness).
absl::StatusOr<std::string> RandomBytes(size_t count);

// `bytes` random bytes as lowercase hex (2 x bytes characters): a token to print or send.
absl::StatusOr<std::string> RandomHexToken(size_t bytes);

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_RANDOM_BYTES_H_
