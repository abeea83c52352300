#include "common/text.h"

#include <unicode/casemap.h>
#include <unicode/uchar.h>
#include <unicode/utf16.h>

#include <algorithm>

#include "common/error.h"

namespace rv::text {

int32_t decode_utf8(std::string_view s, size_t i, size_t& len) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  uint8_t b0 = p[i];
  if (b0 < 0x80) {
    len = 1;
    return b0;
  }
  // Table 3-7 of the Unicode standard: well-formed byte sequences. The
  // second byte's range depends on the lead byte; later ones are 80..BF.
  int need;
  uint8_t lo = 0x80, hi = 0xBF;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    len = 1;
    return -1;
  }
  size_t k = 1;
  for (; k <= static_cast<size_t>(need); ++k) {
    if (i + k >= n) {
      len = k;
      return -1;
    }
    uint8_t b = p[i + k];
    if (b < lo || b > hi) {
      len = k;
      return -1;
    }
    lo = 0x80;
    hi = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
  }
  len = k;
  return static_cast<int32_t>(cp);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t incomplete_utf8_tail(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of an unfinished sequence.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    size_t start = n - back;
    auto b = static_cast<uint8_t>(s[start]);
    if (b >= 0x80 && b < 0xC0) continue;  // continuation byte: keep looking
    size_t len = 0;
    if (decode_utf8(s, start, len) < 0 && start + len == n) {
      // Ill-formed only because the input ended: a proper prefix.
      return back;
    }
    return 0;
  }
  return 0;
}

std::vector<std::string_view> chars(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    decode_utf8(s, i, len);
    out.push_back(s.substr(i, len));
  }
  return out;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0, len = 0; i < s.size(); i += len, ++n) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      len = 1;
      continue;
    }
    decode_utf8(s, i, len);
  }
  return n;
}

bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

namespace {

// Whether `cp` is assigned in the target Unicode version (ICU reports the
// version that first assigned it; 0 for unassigned code points).
bool known(uint32_t cp) {
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(cp), age);
  return age[0] != 0 && age[0] <= kUnicodeMajor;
}

enum class Case { kLower, kUpper, kTitle };

bool changes(uint32_t cp, Case c) {
  UProperty p = c == Case::kLower   ? UCHAR_CHANGES_WHEN_LOWERCASED
                : c == Case::kUpper ? UCHAR_CHANGES_WHEN_UPPERCASED
                                    : UCHAR_CHANGES_WHEN_TITLECASED;
  return u_hasBinaryProperty(static_cast<UChar32>(cp), p) && known(cp);
}

// Appends the full (context-free) case mapping of one code point.
void append_mapped(std::string& out, uint32_t cp, Case c) {
  if (cp < 0x80) {
    char ch = static_cast<char>(cp);
    if (c == Case::kLower && ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
    if (c != Case::kLower && ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
    out.push_back(ch);
    return;
  }
  if (!changes(cp, c)) {
    append_utf8(out, cp);
    return;
  }
  UChar src[2];
  int32_t n = 0;
  U16_APPEND_UNSAFE(src, n, static_cast<UChar32>(cp));
  // Full mappings of one code point have at most 3 code points (SpecialCasing).
  UChar dst[16];
  UErrorCode err = U_ZERO_ERROR;
  int32_t m;
  if (c == Case::kLower) {
    m = icu::CaseMap::toLower("", 0, src, n, dst, 16, nullptr, err);
  } else if (c == Case::kUpper) {
    m = icu::CaseMap::toUpper("", 0, src, n, dst, 16, nullptr, err);
  } else {
    // One code point is one "word": no break iterator, no adjustment.
    m = icu::CaseMap::toTitle("", U_TITLECASE_WHOLE_STRING | U_TITLECASE_NO_BREAK_ADJUSTMENT,
                              nullptr, src, n, dst, 16, nullptr, err);
  }
  if (U_FAILURE(err))
    throw Error("text", std::string("ICU case mapping failed: ") + u_errorName(err));
  for (int32_t k = 0; k < m;) {
    UChar32 u;
    U16_NEXT_UNSAFE(dst, k, u);
    append_utf8(out, static_cast<uint32_t>(u));
  }
}

// A decoded unit of the input: its code point (-1 when ill-formed) and bytes.
struct Unit {
  int32_t cp;
  std::string_view bytes;
};

std::vector<Unit> units(std::string_view s) {
  std::vector<Unit> out;
  out.reserve(s.size());
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    int32_t cp = decode_utf8(s, i, len);
    out.push_back({cp, s.substr(i, len)});
  }
  return out;
}

bool cased(const Unit& u) {
  return u.cp >= 0 && is_cased(static_cast<uint32_t>(u.cp));
}
bool ignorable(const Unit& u) {
  return u.cp >= 0 && is_case_ignorable(static_cast<uint32_t>(u.cp));
}

// CPython's handle_capital_sigma: U+03A3 lowers to final sigma U+03C2 after a
// cased letter (case-ignorables skipped) unless a cased letter follows
// (case-ignorables skipped).
uint32_t lower_sigma(const std::vector<Unit>& u, size_t i) {
  size_t j = i;
  while (j > 0 && ignorable(u[j - 1])) --j;
  bool final_sigma = j > 0 && cased(u[j - 1]);
  if (final_sigma) {
    size_t k = i + 1;
    while (k < u.size() && ignorable(u[k])) ++k;
    final_sigma = k == u.size() || !cased(u[k]);
  }
  return final_sigma ? 0x3C2 : 0x3C3;
}

// Python's lower_ucs4: the full lowercase mapping plus the sigma rule.
void append_lower(std::string& out, const std::vector<Unit>& u, size_t i) {
  if (u[i].cp < 0)
    out += u[i].bytes;
  else if (u[i].cp == 0x3A3)
    append_utf8(out, lower_sigma(u, i));
  else
    append_mapped(out, static_cast<uint32_t>(u[i].cp), Case::kLower);
}

void append_case(std::string& out, const Unit& u, Case c) {
  if (u.cp < 0)
    out += u.bytes;
  else
    append_mapped(out, static_cast<uint32_t>(u.cp), c);
}

}  // namespace

bool is_cased(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  // Other_Lowercase since Unicode 15.0 only (see the header).
  if (cp == 0x10FC || (cp >= 0xA7F2 && cp <= 0xA7F4) || cp == 0xAB69) return false;
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_CASED) && known(cp);
}

bool is_case_ignorable(uint32_t cp) {
  if (cp < 0x80) return cp == '\'' || cp == '.' || cp == ':' || cp == '^' || cp == '`';
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_CASE_IGNORABLE) && known(cp);
}

std::string lower(std::string_view s) {
  auto u = units(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < u.size(); ++i) append_lower(out, u, i);
  return out;
}

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const Unit& x : units(s)) append_case(out, x, Case::kUpper);
  return out;
}

std::string title(std::string_view s) {
  // CPython's do_title: a cased character after a cased one is lowered,
  // any other character is title-cased.
  auto u = units(s);
  std::string out;
  out.reserve(s.size());
  bool prev_cased = false;
  for (size_t i = 0; i < u.size(); ++i) {
    if (prev_cased)
      append_lower(out, u, i);
    else
      append_case(out, u[i], Case::kTitle);
    prev_cased = cased(u[i]);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  auto u = units(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < u.size(); ++i) {
    if (i == 0)
      append_case(out, u[i], Case::kTitle);
    else
      append_lower(out, u, i);
  }
  return out;
}

namespace {

bool space_unit(std::string_view ch) {
  size_t len = 0;
  int32_t cp = decode_utf8(ch, 0, len);
  return cp >= 0 && is_space(static_cast<uint32_t>(cp));
}

template <class Pred>
std::string strip_if(std::string_view s, Side side, Pred strip_it) {
  const bool left = side != Side::kRight, right = side != Side::kLeft;
  auto c = chars(s);
  size_t b = 0, e = c.size();
  if (left)
    while (b < e && strip_it(c[b])) ++b;
  if (right)
    while (e > b && strip_it(c[e - 1])) --e;
  if (b == e) return "";
  return std::string(c[b].data(), c[e - 1].data() + c[e - 1].size());
}

}  // namespace

std::string strip(std::string_view s, Side side) {
  return strip_if(s, side, space_unit);
}

std::string strip(std::string_view s, std::string_view set, Side side) {
  auto members = chars(set);
  return strip_if(s, side, [&](std::string_view ch) {
    return std::find(members.begin(), members.end(), ch) != members.end();
  });
}

std::vector<std::string> split(std::string_view s, int64_t maxsplit) {
  std::vector<std::string> out;
  auto c = chars(s);
  size_t k = 0;
  while (k < c.size()) {
    while (k < c.size() && space_unit(c[k])) ++k;
    if (k == c.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      // The rest, with trailing whitespace kept (Python does the same).
      out.emplace_back(c[k].data(), s.data() + s.size() - c[k].data());
      return out;
    }
    size_t b = k;
    while (k < c.size() && !space_unit(c[k])) ++k;
    out.emplace_back(c[b].data(), c[k - 1].data() + c[k - 1].size() - c[b].data());
  }
  return out;
}

std::vector<std::string> split(std::string_view s, std::string_view sep, int64_t maxsplit) {
  if (sep.empty()) throw Error("text", "empty separator");
  std::vector<std::string> out;
  size_t start = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t k = s.find(sep, start);
    if (k == std::string_view::npos) break;
    out.emplace_back(s.substr(start, k - start));
    start = k + sep.size();
  }
  out.emplace_back(s.substr(start));
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '&':
        o += "&amp;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += ch;
    }
  }
  return o;
}

}  // namespace rv::text
