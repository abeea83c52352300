// Unicode pieces the tokenizer needs on top of common/text.h: the GPT-2
// byte <-> character table of byte-level BPE, NFC normalization (ICU) and a
// few character classes. All functions are pure and thread-safe.
#pragma once

#include <array>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/text.h"

namespace rv::unicode {

// The UTF-8 codec is common/text.h's (decode_utf8 splits ill-formed input
// into maximal subparts: one U+FFFD each under WHATWG / Python
// errors="replace" semantics).
using text::append_utf8;
using text::decode_utf8;
using text::incomplete_utf8_tail;

// GPT-2 bytes_to_unicode(): printable bytes map to themselves, the others to
// U+0100 upwards, so every byte becomes one visible character.
const std::array<uint32_t, 256>& byte_to_char();
// Inverse: -1 for characters that are not byte-level characters.
int byte_of_char(uint32_t cp);
// Raw bytes -> tokenizer.json form (each byte -> its character, UTF-8).
std::string bytes_to_token_text(std::string_view bytes);
// tokenizer.json form -> raw bytes. Characters outside the table are kept as
// their own UTF-8 (Hugging Face's decoder does the same); returns false then.
bool token_text_to_bytes(std::string_view text, std::string& out);

// NFC via ICU. `s` must be valid UTF-8. Returns false when `s` is already
// NFC (the common case, decided without copying); otherwise stores the
// normalized text in `out` and returns true.
bool nfc(std::string_view s, std::string& out);

// Unicode White_Space (Rust char::is_whitespace), used by lstrip/rstrip.
bool is_whitespace(uint32_t cp);
// Alphanumeric or '_' (word characters for single_word added tokens).
bool is_word_char(uint32_t cp);

}  // namespace rv::unicode
