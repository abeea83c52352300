#include "eval/tasks/extract.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/error.h"

namespace rv::eval {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

namespace {

// RAII match data sized for one pattern; one per call keeps Regex const and
// thread-safe.
struct MatchData {
  explicit MatchData(const pcre2_code* code)
      : md(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(md); }
  pcre2_match_data* md;
};

// Advances one UTF-8 character (one byte for invalid sequences).
size_t next_char(std::string_view s, size_t i) {
  if (i >= s.size()) return i + 1;
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
  if (i + len > s.size()) return i + 1;
  for (size_t k = 1; k < len; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return i + 1;
  return i + len;
}

// Calls fn(ovector) for each successive match with Python's iteration rule.
template <typename Fn>
void for_each_match(const pcre2_code* code, std::string_view text, Fn&& fn) {
  MatchData m(code);
  size_t pos = 0;
  bool last_empty = false;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (pos <= text.size()) {
    uint32_t opts = last_empty ? PCRE2_NOTEMPTY_ATSTART : 0;
    int rc = pcre2_match(code, subject, text.size(), pos, opts, m.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(rc, buf, sizeof buf);
      throw Error("regex match", reinterpret_cast<const char*>(buf));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
    fn(ov);
    size_t start = ov[0], end = ov[1];
    last_empty = (start == end);
    pos = end;
    (void)start;
  }
}

bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

// Decodes the code point starting at i (or the single byte for invalid input).
uint32_t decode_at(std::string_view s, size_t i, size_t* len) {
  size_t n = next_char(s, i) - i;
  *len = n;
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (n == 1) return c;
  uint32_t cp = c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  return cp;
}

}  // namespace

Regex::Regex(std::string pattern) : pattern_(std::move(pattern)), impl_(std::make_unique<Impl>()) {
  pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  int err = 0;
  PCRE2_SIZE off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, cc);
  pcre2_compile_context_free(cc);
  if (!impl_->code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    throw Error("regex '" + pattern_ + "'", std::string(reinterpret_cast<const char*>(buf)) +
                                                " at offset " + std::to_string(off));
  }
  uint32_t n = 0;
  pcre2_pattern_info(impl_->code, PCRE2_INFO_CAPTURECOUNT, &n);
  groups_ = static_cast<int>(n);
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<std::vector<std::string>> Regex::findall(std::string_view text) const {
  std::vector<std::vector<std::string>> out;
  for_each_match(impl_->code, text, [&](const PCRE2_SIZE* ov) {
    std::vector<std::string> m;
    if (groups_ == 0) {
      m.emplace_back(text.substr(ov[0], ov[1] - ov[0]));
    } else {
      for (int g = 1; g <= groups_; ++g) {
        PCRE2_SIZE b = ov[2 * g], e = ov[2 * g + 1];
        m.emplace_back(b == PCRE2_UNSET ? std::string() : std::string(text.substr(b, e - b)));
      }
    }
    out.push_back(std::move(m));
  });
  return out;
}

std::string Regex::sub(std::string_view text, std::string_view repl) const {
  std::string out;
  size_t copied = 0;
  for_each_match(impl_->code, text, [&](const PCRE2_SIZE* ov) {
    out.append(text.substr(copied, ov[0] - copied));
    out.append(repl);
    copied = ov[1];
  });
  out.append(text.substr(copied));
  return out;
}

bool Regex::search(std::string_view text) const {
  MatchData m(impl_->code);
  int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0,
                       m.md, nullptr);
  return rc >= 0;
}

std::string py_strip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e) {
    size_t len;
    if (!is_py_space(decode_at(s, b, &len))) break;
    b += len;
  }
  // Scan forward to find the last non-space character (UTF-8 is not
  // reliably decodable backwards when invalid).
  size_t last_end = b;
  for (size_t i = b; i < e;) {
    size_t len;
    uint32_t cp = decode_at(s, i, &len);
    i += len;
    if (!is_py_space(cp)) last_end = i;
  }
  return std::string(s.substr(b, last_end - b));
}

std::string regex_extract(const Regex& re, std::string_view text, int group_select,
                          std::string_view fallback) {
  auto matches = re.findall(text);
  if (matches.empty()) return std::string(fallback);
  long idx = group_select < 0 ? static_cast<long>(matches.size()) + group_select : group_select;
  if (idx < 0 || idx >= static_cast<long>(matches.size())) return std::string(fallback);
  const auto& m = matches[idx];
  std::string pick;
  if (re.group_count() <= 1) {
    pick = m[0];
  } else {
    // A tuple match: the first non-empty group, or the fallback if all empty.
    bool found = false;
    for (const auto& g : m)
      if (!g.empty()) {
        pick = g;
        found = true;
        break;
      }
    if (!found) return std::string(fallback);
  }
  return py_strip(pick);
}

}  // namespace rv::eval
