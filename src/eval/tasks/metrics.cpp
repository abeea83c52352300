#include "eval/tasks/metrics.h"

#include <cmath>
#include <unordered_map>

#include "common/error.h"
#include "eval/tasks/extract.h"

namespace rv::eval {

namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Length of a valid UTF-8 sequence starting at s[i], or 0 if invalid.
size_t utf8_seq(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return len;
}

uint32_t lower_cp(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if ((cp >= 0xc0 && cp <= 0xde && cp != 0xd7)) return cp + 32;  // Latin-1
  if (cp >= 0x100 && cp <= 0x17f) {                              // Latin Extended-A
    if (cp == 0x130 || cp == 0x131 || cp == 0x138 || cp == 0x149 || cp == 0x17f) return cp;
    bool odd_upper = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e);
    if (odd_upper) return (cp & 1) ? cp + 1 : cp;
    if (cp == 0x178) return 0xff;
    return (cp & 1) ? cp : cp + 1;
  }
  if (cp >= 0x391 && cp <= 0x3ab && cp != 0x3a2) return cp + 32;  // Greek
  if (cp >= 0x410 && cp <= 0x42f) return cp + 32;                 // Cyrillic
  if (cp >= 0x400 && cp <= 0x40f) return cp + 80;
  return cp;
}

}  // namespace

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    size_t len = utf8_seq(s, i);
    i += len ? len : 1;
    ++n;
  }
  return n;
}

std::string py_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t len = utf8_seq(s, i);
    if (len <= 1) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : static_cast<char>(c);
      ++i;
      continue;
    }
    uint32_t cp = static_cast<unsigned char>(s[i]) & (0x7f >> len);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    append_utf8(out, lower_cp(cp));
    i += len;
  }
  return out;
}

std::string exact_match_normalize(std::string_view s, const ExactMatchOptions& opts) {
  // Compiled patterns are cached per thread (a handful of patterns per run).
  thread_local std::unordered_map<std::string, Regex> cache;
  std::string out(s);
  for (const auto& pat : opts.regexes_to_ignore) {
    auto it = cache.find(pat);
    if (it == cache.end()) it = cache.emplace(pat, Regex(pat)).first;
    out = it->second.sub(out, "");
  }
  if (opts.ignore_case) out = py_lower(out);
  if (opts.ignore_punctuation) {
    std::string kept;
    for (char c : out) {
      unsigned char u = static_cast<unsigned char>(c);
      bool punct = (u >= 33 && u <= 47) || (u >= 58 && u <= 64) || (u >= 91 && u <= 96) ||
                   (u >= 123 && u <= 126);
      if (!punct) kept += c;
    }
    out = std::move(kept);
  }
  return out;
}

double exact_match(std::string_view prediction, std::string_view reference,
                   const ExactMatchOptions& opts) {
  return exact_match_normalize(prediction, opts) == exact_match_normalize(reference, opts) ? 1.0
                                                                                           : 0.0;
}

double pass_at_k(int n, int c, int k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw Error("pass@k", "need 0 <= c <= n and 1 <= k <= n, got n=" + std::to_string(n) +
                              " c=" + std::to_string(c) + " k=" + std::to_string(k));
  if (n - c < k) return 1.0;
  double prod = 1.0;
  for (int i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / i;
  return 1.0 - prod;
}

size_t argmax_first(const std::vector<double>& v) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

size_t acc_norm_choice(const std::vector<double>& loglik, const std::vector<std::string>& choices) {
  if (loglik.size() != choices.size())
    throw Error("acc_norm", "log-likelihoods and choices differ in count");
  std::vector<double> norm(loglik.size());
  for (size_t i = 0; i < loglik.size(); ++i)
    norm[i] = loglik[i] / static_cast<double>(utf8_length(choices[i]));
  return argmax_first(norm);
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double mean_stderr(const std::vector<double>& v) {
  size_t n = v.size();
  if (n < 2) return 0.0;
  double m = mean(v), ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(n - 1)) / std::sqrt(static_cast<double>(n));
}

double weighted_mean(const std::vector<double>& scores, const std::vector<size_t>& sizes) {
  if (scores.size() != sizes.size()) throw Error("weighted_mean", "scores and sizes differ");
  double num = 0, den = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    num += scores[i] * static_cast<double>(sizes[i]);
    den += static_cast<double>(sizes[i]);
  }
  return den > 0 ? num / den : 0.0;
}

double pooled_stderr(const std::vector<double>& stderrs, const std::vector<size_t>& sizes) {
  if (stderrs.size() != sizes.size()) throw Error("pooled_stderr", "stderrs and sizes differ");
  double num = 0, total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    double n = static_cast<double>(sizes[i]);
    num += (n - 1) * stderrs[i] * stderrs[i] * n;
    total += n;
  }
  double denom = total - static_cast<double>(sizes.size());
  if (denom <= 0 || total <= 0) return 0.0;
  return std::sqrt(num / denom / total);
}

}  // namespace rv::eval
