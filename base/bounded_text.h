// Text that crosses a trust boundary into a stored record (an attempt's message, which a
// worker and a trainer write and a tenant reads back) is bounded here, once.
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_BASE_BOUNDED_TEXT_H_
#define TUNELEDGER_BASE_BOUNDED_TEXT_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace tuneledger {

// The most bytes of an attempt's message the server stores (and a worker sends).
inline constexpr size_t kMaxAttemptMessageBytes = 2048;

// `text` when it fits in `max_bytes`; otherwise its head, cut at a UTF-8 character boundary,
// followed by " [N more bytes]" (the whole result within `max_bytes` when max_bytes >= 32).
inline std::string BoundedText(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  const size_t note_room = 32;
  size_t cut = max_bytes > note_room ? max_bytes - note_room : 0;
  // Back up over UTF-8 continuation bytes (10xxxxxx) so no character is split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + " [" + std::to_string(text.size() - cut) +
         " more bytes]";
}

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_BOUNDED_TEXT_H_
