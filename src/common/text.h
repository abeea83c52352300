// UTF-8 text with Python 3 `str` semantics: the one UTF-8 codec of the
// project and the str methods that templates and metrics need (lower, upper,
// title, capitalize, isspace, strip, split, len).
//
// Invalid bytes: decoding follows the Unicode "maximal subpart" rule (the
// WHATWG decoder and Python's errors="replace" do the same): an ill-formed
// sequence is split into maximal ill-formed subparts (a lead byte plus the
// continuation bytes that were still acceptable), and each subpart is one
// unit. Overlong forms, encoded surrogates (ED A0..BF xx) and code points
// above U+10FFFF are ill-formed. Everywhere in this header such a unit counts
// as one character that is not cased, not case-ignorable and not whitespace,
// and case mapping copies its bytes through unchanged (Python never sees such
// a unit; keeping the bytes means no text is lost or replaced).
//
// Case mapping and the Cased / Case_Ignorable properties come from ICU (the
// root locale: no Turkish or Lithuanian rules), which is already a dependency
// for NFC, rather than from generated tables: ICU carries the full
// SpecialCasing mappings ('ß'.upper() == "SS", 'İ'.lower() == "i̇") and needs
// no generator step in the build. Python's context rule for capital sigma
// (Final_Sigma) is implemented here exactly as CPython does. Target: Python
// 3.11, whose Unicode database is 14.0. The ICU this builds against may know a
// newer Unicode (ICU 72: 15.0); code points assigned after 14.0 are treated as
// unassigned (identity mappings, not cased, not case-ignorable) so results
// match Python 3.11 for every code point. Unicode 15.0 also made five
// assigned characters Other_Lowercase, hence Cased: U+10FC, U+A7F2..U+A7F4 and
// U+AB69; they are not cased here, as in Python 3.11. Whitespace is Python's
// str.isspace() set (bidirectional class WS, B or S, or category Zs), which
// differs from Unicode White_Space (U+001C..U+001F are Python whitespace).
//
// All functions are pure and thread-safe. Inputs need not be valid UTF-8.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rv::text {

// The Unicode version whose character repertoire the case functions use.
inline constexpr int kUnicodeMajor = 14;

// Decodes one code point at s[i] (REQUIRES: i < s.size()). On a well-formed
// sequence returns the code point and sets `len` to its byte length; otherwise
// returns -1 and sets `len` to the length of the maximal ill-formed subpart
// (>= 1).
int32_t decode_utf8(std::string_view s, size_t i, size_t& len);

// Appends the UTF-8 form of `cp` (REQUIRES: cp <= 0x10FFFF). Surrogate code
// points are written in the 3-byte form, which decode_utf8 rejects; Python
// string escapes such as "\ud800" produce them.
void append_utf8(std::string& out, uint32_t cp);

// Length of a trailing run of bytes that is a proper prefix of a well-formed
// UTF-8 sequence (0..3): bytes that may still become a character when more
// input arrives.
size_t incomplete_utf8_tail(std::string_view s);

// The units of `s` in order: each well-formed code point or maximal
// ill-formed subpart, as a view into `s`.
std::vector<std::string_view> chars(std::string_view s);
// Python len(): the number of units of `s`.
size_t length(std::string_view s);

// Python str.isspace() for one code point.
bool is_space(uint32_t cp);
// Unicode Cased and Case_Ignorable (as of Unicode 14.0), which Python's
// title() and Final_Sigma rule use.
bool is_cased(uint32_t cp);
bool is_case_ignorable(uint32_t cp);

// Python str.lower(), str.upper(), str.title(), str.capitalize(). Full case
// mappings: the result may have more code points than the input.
std::string lower(std::string_view s);
std::string upper(std::string_view s);
std::string title(std::string_view s);
std::string capitalize(std::string_view s);

// Python str.strip() (kBoth) / lstrip() (kLeft) / rstrip() (kRight) without
// arguments (whitespace as is_space) and with `chars` (a set of units; an
// empty set strips nothing).
enum class Side { kLeft, kRight, kBoth };
std::string strip(std::string_view s, Side side = Side::kBoth);
std::string strip(std::string_view s, std::string_view chars, Side side = Side::kBoth);

// Python str.split() without a separator: runs of whitespace separate, no
// empty strings at either end; after `maxsplit` splits (negative: no limit)
// the rest is one part with its trailing whitespace kept.
std::vector<std::string> split(std::string_view s, int64_t maxsplit = -1);
// Python str.split(sep, maxsplit). Throws rv::Error for an empty separator
// (Python's ValueError).
std::vector<std::string> split(std::string_view s, std::string_view sep, int64_t maxsplit = -1);

// `s` with < > & " replaced by their XML entities: text and attribute values
// in the SVG plots the reports write.
std::string xml_escape(std::string_view s);

}  // namespace rv::text
