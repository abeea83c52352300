#include "tokenizer/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "common/error.h"

namespace rv::unicode {

const std::array<uint32_t, 256>& byte_to_char() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table;
}

int byte_of_char(uint32_t cp) {
  static const std::vector<int> inv = [] {
    std::vector<int> v(512, -1);
    const auto& t = byte_to_char();
    for (int b = 0; b < 256; ++b) v[t[b]] = b;
    return v;
  }();
  return cp < inv.size() ? inv[cp] : -1;
}

std::string bytes_to_token_text(std::string_view bytes) {
  const auto& t = byte_to_char();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, t[static_cast<uint8_t>(c)]);
  return out;
}

bool token_text_to_bytes(std::string_view text, std::string& out) {
  bool all = true;
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    int32_t cp = decode_utf8(text, i, len);
    int b = cp >= 0 ? byte_of_char(static_cast<uint32_t>(cp)) : -1;
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      out.append(text.substr(i, len));
      all = false;
    }
    i += len;
  }
  return all;
}

bool nfc(std::string_view s, std::string& out) {
  // Characters below U+0300 are NFC-stable and never combine with what
  // follows them unless a combining mark (>= U+0300) comes next, so text made
  // only of them is already NFC.
  bool simple = true;
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
      ++i;
    } else if (b < 0xCC) {  // lead bytes C2..CB encode U+0080..U+02FF
      i += 2;
    } else {
      simple = false;
      break;
    }
  }
  if (simple) return false;
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&err);
  if (U_FAILURE(err))
    throw Error("ICU", std::string("NFC normalizer unavailable: ") + u_errorName(err));
  // UTF-8 -> UTF-16 (at most one UTF-16 unit per UTF-8 byte).
  std::vector<UChar> u16(s.size() + 1);
  int32_t n16 = 0;
  u_strFromUTF8(u16.data(), static_cast<int32_t>(u16.size()), &n16, s.data(),
                static_cast<int32_t>(s.size()), &err);
  if (U_FAILURE(err))
    throw Error("ICU", std::string("UTF-8 conversion failed: ") + u_errorName(err));
  if (unorm2_quickCheck(norm, u16.data(), n16, &err) == UNORM_YES && U_SUCCESS(err)) return false;
  err = U_ZERO_ERROR;
  // NFC output is at most 3x the input length in UTF-16 units.
  std::vector<UChar> out16(static_cast<size_t>(n16) * 3 + 16);
  int32_t m = unorm2_normalize(norm, u16.data(), n16, out16.data(),
                               static_cast<int32_t>(out16.size()), &err);
  if (U_FAILURE(err))
    throw Error("ICU", std::string("NFC normalization failed: ") + u_errorName(err));
  out.assign(static_cast<size_t>(m) * 3, '\0');
  int32_t n8 = 0;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &n8, out16.data(), m, &err);
  if (U_FAILURE(err))
    throw Error("ICU", std::string("UTF-16 conversion failed: ") + u_errorName(err));
  out.resize(static_cast<size_t>(n8));
  return out != s;
}

bool is_whitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE);
}

bool is_word_char(uint32_t cp) {
  if (cp < 0x80) return std::isalnum(static_cast<int>(cp)) || cp == '_';
  return u_isalnum(static_cast<UChar32>(cp));
}

}  // namespace rv::unicode
