#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "common/error.h"
#include "formats/arch.h"
#include "tokenizer/unicode.h"

namespace rv::pretok {
namespace {

// The classes the patterns distinguish. They partition the code points:
// \r and \n are white space the patterns also name on their own.
enum Cls : uint8_t { kOther, kLetter, kNumber, kSpace, kCrLf };

constexpr uint32_t kCodePoints = 0x110000;
constexpr uint32_t kBlockBits = 8;

// Character classes as PCRE2 (UTF + UCP) sees them, filled a block at a
// time on first use: asking PCRE2 for all 1.1M code points up front would
// add noticeably to every load, and real text touches a handful of blocks.
class ClassTable {
 public:
  uint8_t of(uint32_t cp) {
    uint32_t b = cp >> kBlockBits;
    if (!ready_[b].load(std::memory_order_acquire)) fill(b);
    return cls_[cp];
  }

 private:
  void fill(uint32_t block) {
    std::lock_guard<std::mutex> lock(m_);
    if (ready_[block].load(std::memory_order_relaxed)) return;
    if (!re_) {
      int err = 0;
      PCRE2_SIZE off = 0;
      const char* pat = R"((\p{L})|(\p{N})|(\s))";
      re_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &err, &off, nullptr);
      md_ = pcre2_match_data_create(4, nullptr);
      if (!re_ || !md_) throw Error("tokenizer: cannot build the character class table");
    }
    uint32_t lo = block << kBlockBits, hi = lo + (1u << kBlockBits);
    for (uint32_t cp = lo; cp < hi; ++cp) {
      uint8_t c = kOther;
      if (cp < 0xD800 || cp > 0xDFFF) {  // surrogates never occur in valid UTF-8
        std::string buf;
        unicode::append_utf8(buf, cp);
        int rc = pcre2_match(re_, reinterpret_cast<PCRE2_SPTR>(buf.data()), buf.size(), 0, 0, md_,
                             nullptr);
        // rc is one more than the highest group that took part: 2, 3 or 4.
        if (rc == 2) c = kLetter;
        if (rc == 3) c = kNumber;
        if (rc == 4) c = (cp == '\r' || cp == '\n') ? kCrLf : kSpace;
      }
      cls_[cp] = c;
    }
    ready_[block].store(1, std::memory_order_release);
  }

  std::atomic<uint8_t> ready_[kCodePoints >> kBlockBits] = {};
  uint8_t cls_[kCodePoints] = {};
  std::mutex m_;
  pcre2_code* re_ = nullptr;  // kept for the life of the process
  pcre2_match_data* md_ = nullptr;
};

ClassTable& classes() {
  static ClassTable t;
  return t;
}

// Decodes the character at s[i] of valid UTF-8.
inline uint32_t char_at(std::string_view s, size_t i, size_t& len) {
  auto b = static_cast<uint8_t>(s[i]);
  if (b < 0x80) {
    len = 1;
    return b;
  }
  size_t l = 0;
  int32_t cp = unicode::decode_utf8(s, i, l);
  len = l;
  return cp < 0 ? 0xFFFD : static_cast<uint32_t>(cp);
}

struct Scan {
  std::string_view s;
  ClassTable& t;
  uint8_t cls_at(size_t i, size_t& len) const { return t.of(char_at(s, i, len)); }
  // End of the run of characters of class `c` (or, with `c2`, of either) from i.
  size_t run(size_t i, uint8_t c, uint8_t c2 = 0xFF) const {
    while (i < s.size()) {
      size_t l;
      uint8_t k = cls_at(i, l);
      if (k != c && k != c2) break;
      i += l;
    }
    return i;
  }
  // The character at i folded the way (?i:...) folds the contraction
  // letters: ASCII case, plus U+017F LATIN SMALL LETTER LONG S, which
  // Unicode case folding equates with 's'. 0 when it is none of those.
  char folded(size_t i, size_t& len) const {
    if (i >= s.size()) return 0;
    auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
      len = 1;
      return static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b);
    }
    if (b == 0xC5 && i + 1 < s.size() && static_cast<uint8_t>(s[i + 1]) == 0xBF) {
      len = 2;
      return 's';
    }
    return 0;
  }
  // (?i:'s|'t|'re|'ve|'m|'ll|'d) after the apostrophe at i - 1: end or 0.
  size_t contraction(size_t i) const {
    size_t l1 = 0, l2 = 0;
    char a = folded(i, l1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + l1;
    if (a != 'r' && a != 'v' && a != 'l') return 0;
    char b = folded(i + l1, l2);
    if ((a == 'l' && b == 'l') || (a != 'l' && b == 'e')) return i + l1 + l2;
    return 0;
  }
};

}  // namespace

Pattern recognise(std::string_view regex) {
  if (regex == kQwen2PreTokenizer.regex) return Pattern::kQwen2;
  if (regex == kLlama3PreTokenizer.regex) return Pattern::kLlama3;
  return Pattern::kNone;
}

size_t next_piece(Pattern p, std::string_view s, size_t i) {
  const size_t n = s.size();
  Scan sc{s, classes()};
  size_t l0;
  uint32_t c0 = char_at(s, i, l0);
  uint8_t k0 = sc.t.of(c0);

  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c0 == '\'') {
    if (size_t e = sc.contraction(i + 1)) return e;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+ : the optional character is taken whenever a
  // letter follows it, since the class excludes letters themselves.
  if (k0 == kLetter) return sc.run(i + l0, kLetter);
  if (k0 != kNumber && k0 != kCrLf && i + l0 < n) {
    size_t l1;
    if (sc.cls_at(i + l0, l1) == kLetter) return sc.run(i + l0 + l1, kLetter);
  }
  // \p{N} or \p{N}{1,3}
  if (k0 == kNumber) {
    size_t e = i + l0;
    for (int k = 1; p == Pattern::kLlama3 && k < 3 && e < n; ++k) {
      size_t l;
      if (sc.cls_at(e, l) != kNumber) break;
      e += l;
    }
    return e;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  size_t j = i;
  uint8_t kj = k0;
  if (c0 == ' ' && i + 1 < n) {
    size_t l;
    j = i + 1;
    kj = sc.cls_at(j, l);
  }
  if (kj == kOther) {
    size_t e = sc.run(j, kOther);
    while (e < n && (s[e] == '\r' || s[e] == '\n')) ++e;
    return e;
  }
  // c0 is white space; its run is [i, e).
  size_t e = i, after_last_crlf = 0, last_len = 0;
  while (e < n) {
    size_t l;
    uint8_t k = sc.cls_at(e, l);
    if (k != kSpace && k != kCrLf) break;
    e += l;
    last_len = l;
    if (k == kCrLf) after_last_crlf = e;
  }
  // \s*[\r\n]+ : \s* backtracks until [\r\n]+ can start, i.e. to the run's
  // last \r or \n, and [\r\n]+ then takes just that one.
  if (after_last_crlf) return after_last_crlf;
  // \s+(?!\S) : the whole run at the end of the text; otherwise all but its
  // last character (which is then followed by white space), if that leaves any.
  if (e == n) return e;
  if (e - last_len > i) return e - last_len;
  return e;  // \s+
}

}  // namespace rv::pretok
