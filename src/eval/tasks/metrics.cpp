#include "eval/tasks/metrics.h"

#include <cmath>
#include <unordered_map>

#include "common/error.h"
#include "common/text.h"
#include "eval/tasks/extract.h"

namespace rv::eval {

size_t utf8_length(std::string_view s) {
  return text::length(s);
}

std::string py_lower(std::string_view s) {
  return text::lower(s);
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
