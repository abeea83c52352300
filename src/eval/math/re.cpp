#include "eval/math/re.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "common/error.h"

namespace rv::eval::math::detail {

namespace {
// Work bounds per pcre2_match call: generous for real answers, small enough
// that a hostile subject cannot make one call take more than milliseconds.
constexpr uint32_t kMatchLimit = 200000;
constexpr uint32_t kDepthLimit = 2000;
constexpr size_t kNpos = static_cast<size_t>(-1);

}  // namespace

bool ReMatch::has(int g) const {
  return g >= 0 && static_cast<size_t>(g) < spans.size() && spans[g].first != kNpos;
}
std::string_view ReMatch::group(int g) const {
  if (!has(g)) return {};
  return subject.substr(spans[g].first, spans[g].second - spans[g].first);
}

struct Re::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_context* mctx = nullptr;
  ~Impl() {
    pcre2_code_free(code);
    pcre2_match_context_free(mctx);
  }
};

Re::Re(std::string_view pattern, bool dotall) : impl_(std::make_unique<Impl>()) {
  pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  int err = 0;
  PCRE2_SIZE off = 0;
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (dotall ? PCRE2_DOTALL : 0);
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts,
                              &err, &off, cc);
  pcre2_compile_context_free(cc);
  if (!impl_->code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    throw Error("math regex '" + std::string(pattern) + "'",
                std::string(reinterpret_cast<const char*>(buf)) + " at " + std::to_string(off));
  }
  impl_->mctx = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(impl_->mctx, kMatchLimit);
  pcre2_set_depth_limit(impl_->mctx, kDepthLimit);
  uint32_t ngroups = 0, count = 0, entry = 0;
  pcre2_pattern_info(impl_->code, PCRE2_INFO_CAPTURECOUNT, &ngroups);
  names_.assign(ngroups + 1, "");
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(impl_->code, PCRE2_INFO_NAMECOUNT, &count);
  pcre2_pattern_info(impl_->code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
  pcre2_pattern_info(impl_->code, PCRE2_INFO_NAMETABLE, &table);
  for (uint32_t i = 0; i < count; ++i) {
    const unsigned char* e = table + i * entry;
    int n = (e[0] << 8) | e[1];
    names_[n] = reinterpret_cast<const char*>(e + 2);
  }
}

Re::~Re() = default;
Re::Re(Re&&) noexcept = default;

int Re::group_index(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int>(i);
  return -1;
}

std::vector<ReMatch> Re::finditer(std::string_view s, size_t max_matches) const {
  std::vector<ReMatch> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0;
  bool last_empty = false;
  while (pos <= s.size() && out.size() < max_matches) {
    uint32_t opts = last_empty ? PCRE2_NOTEMPTY_ATSTART : 0;
    int rc = pcre2_match(impl_->code, subject, s.size(), pos, opts, md, impl_->mctx);
    if (rc < 0) break;  // no match, or a work limit: treat both as "no further match"
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    uint32_t n = pcre2_get_ovector_count(md);
    ReMatch m;
    m.subject = s;
    m.spans.resize(names_.size(), {kNpos, kNpos});
    for (uint32_t g = 0; g < n && g < names_.size(); ++g)
      if (ov[2 * g] != PCRE2_UNSET) m.spans[g] = {ov[2 * g], ov[2 * g + 1]};
    size_t start = ov[0], end = ov[1];
    out.push_back(std::move(m));
    // After an empty match, Python's finditer retries at the same place but
    // forbids another empty match there (PCRE2_NOTEMPTY_ATSTART does that).
    last_empty = start == end;
    pos = end;
  }
  pcre2_match_data_free(md);
  return out;
}

bool Re::search(std::string_view s) const {
  return !finditer(s, 1).empty();
}

std::string Re::sub(std::string_view s,
                    const std::function<std::string(const ReMatch&)>& fn) const {
  std::string out;
  size_t last = 0;
  for (const ReMatch& m : finditer(s, static_cast<size_t>(-1))) {
    out.append(s.substr(last, m.start() - last));
    out += fn(m);
    last = m.end();
  }
  out.append(s.substr(last));
  return out;
}

std::string Re::sub(std::string_view s, std::string_view repl) const {
  return sub(s, [&](const ReMatch& m) {
    std::string r;
    for (size_t i = 0; i < repl.size(); ++i) {
      if (repl[i] == '\\' && i + 1 < repl.size() && repl[i + 1] >= '1' && repl[i + 1] <= '9') {
        r += m.group(repl[i + 1] - '0');
        ++i;
      } else if (repl[i] == '\\' && i + 1 < repl.size() && repl[i + 1] == '\\') {
        r += '\\';
        ++i;
      } else {
        r += repl[i];
      }
    }
    return r;
  });
}

}  // namespace rv::eval::math::detail
