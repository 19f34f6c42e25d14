// UTF-8 as protobuf and JSON parsers take it, checked once: the job spec's contract counts text
// with it, and the gRPC request parser (proto/tuneledger/v1/request_parsing.h) finds the field a
// request was refused for with it, so both agree with protobuf on what is valid.
//
// Header-only, the C++ standard library alone (the trainer's spec parser uses it too).
// Thread safety: pure functions.
#ifndef TUNELEDGER_BASE_UTF8_H_
#define TUNELEDGER_BASE_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tuneledger {

// Code points of `text`; nullopt when it is not valid UTF-8 (RFC 3629: no overlong forms, no
// UTF-16 surrogates, nothing past U+10FFFF).
inline std::optional<int64_t> Utf8Length(std::string_view text) {
  int64_t count = 0;
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    uint32_t code_point = 0;
    uint32_t min_code_point = 0;
    if (byte < 0x80) {
      length = 1;
      code_point = byte;
    } else if ((byte >> 5) == 0x6) {
      length = 2;
      code_point = byte & 0x1F;
      min_code_point = 0x80;
    } else if ((byte >> 4) == 0xE) {
      length = 3;
      code_point = byte & 0x0F;
      min_code_point = 0x800;
    } else if ((byte >> 3) == 0x1E) {
      length = 4;
      code_point = byte & 0x07;
      min_code_point = 0x10000;
    } else {
      return std::nullopt;
    }
    if (i + length > text.size()) return std::nullopt;
    for (size_t j = 1; j < length; ++j) {
      const auto next = static_cast<unsigned char>(text[i + j]);
      if ((next >> 6) != 0x2) return std::nullopt;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    if (code_point < min_code_point || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return std::nullopt;
    }
    i += length;
    ++count;
  }
  return count;
}

}  // namespace tuneledger

#endif  // TUNELEDGER_BASE_UTF8_H_
