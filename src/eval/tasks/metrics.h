// Scoring metrics with lm-evaluation-harness semantics.
//
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rv::eval {

// Options of lm-eval's `exact_match` metric (HF evaluate's exact_match).
// Normalisation order is theirs: regexes_to_ignore (each re.sub'd to "" in
// order), then ignore_case (lower-case), then ignore_punctuation (drop ASCII
// string.punctuation), then compare.
struct ExactMatchOptions {
  std::vector<std::string> regexes_to_ignore;
  bool ignore_case = false;
  bool ignore_punctuation = false;
};

// Normalises one string as exact_match does before comparing.
std::string exact_match_normalize(std::string_view s, const ExactMatchOptions& opts);
// 1.0 when normalised prediction == normalised reference, else 0.0.
double exact_match(std::string_view prediction, std::string_view reference,
                   const ExactMatchOptions& opts);

// Python's str.lower() (rv::text::lower: full Unicode case mapping).
std::string py_lower(std::string_view s);

// Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), computed as a
// product for numerical stability. REQUIRES: 0 <= c <= n, 1 <= k <= n.
double pass_at_k(int n, int c, int k);

// Multiple choice, as lm-eval's multiple_choice output type: index of the
// largest log-likelihood (first on ties, like numpy.argmax), and the index of
// the largest log-likelihood divided by the choice's length in Unicode code
// points (acc_norm; lm-eval divides by len(choice) of the choice text without
// the leading target delimiter).
size_t argmax_first(const std::vector<double>& v);
size_t acc_norm_choice(const std::vector<double>& loglik, const std::vector<std::string>& choices);
// Python len() of a UTF-8 string (rv::text::length: code points; each maximal
// ill-formed subpart counts one).
size_t utf8_length(std::string_view s);

// Mean of v; 0 for empty input.
double mean(const std::vector<double>& v);
// lm-eval's mean_stderr: sample standard deviation (n-1) / sqrt(n); 0 when n < 2.
double mean_stderr(const std::vector<double>& v);

// Group aggregation with weight_by_size: sum(size_i * score_i) / sum(size_i).
double weighted_mean(const std::vector<double>& scores, const std::vector<size_t>& sizes);
// lm-eval's pooled_sample_stderr for a size-weighted group:
// sqrt( sum((n_i - 1) * se_i^2 * n_i) / (N - k) / N ), N = sum n_i, k = groups.
double pooled_stderr(const std::vector<double>& stderrs, const std::vector<size_t>& sizes);

}  // namespace rv::eval
