// `reasonvec report RUN_DIR...`: compares evaluation runs sample by sample.
//
// For every task of the first run (and each of its groups: BBH subtasks,
// GSM-Plus perturbation types) and every run: accuracy (the task's primary
// metric, mean over samples, equal to results.json), a bootstrap 95%
// confidence interval (percentile method, seeded), and for runs after the
// first: the delta to the first run on the documents both scored, a paired
// bootstrap 95% CI of that delta, and McNemar's test on per-document
// correctness (exact two-sided binomial when the discordant count is below
// 25, else chi-square with continuity correction).
//
// Runs sampled K > 1 times per document (results keys "avg@K:<metric>"):
// the per-document value is avg@K, so the bootstrap and the paired delta
// resample documents; cells add "k", "value_metric", "pass_at_k" and
// "maj_at_k" (with CIs); "mcnemar" is null when either run is sampled.
//
// Output: Markdown, JSON and an SVG bar chart (accuracy with CI whiskers).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rv::eval {

struct McNemar {
  int64_t b = 0;         // first run right, other run wrong
  int64_t c = 0;         // first run wrong, other run right
  double statistic = 0;  // chi-square (continuity corrected); 0 when exact
  double p_value = 1;
  bool exact = true;
};
McNemar mcnemar(int64_t b, int64_t c);
// Two-sided exact binomial p-value for k successes in n trials at p = 1/2
// (doubling the smaller tail, capped at 1).
double binomial_two_sided_p(int64_t k, int64_t n);

// Percentile bootstrap CI of the mean of `x` (B resamples, splitmix64 seeded).
std::pair<double, double> bootstrap_ci(const std::vector<double>& x, int B, uint64_t seed,
                                       double level = 0.95);
// Paired: CI of mean(y) - mean(x) resampling documents jointly.
std::pair<double, double> bootstrap_diff_ci(const std::vector<double>& x,
                                            const std::vector<double>& y, int B, uint64_t seed,
                                            double level = 0.95);

struct ReportOptions {
  int bootstrap = 2000;
  uint64_t seed = 1234;
};

// Reads each RUN_DIR's results.json and samples_<task>.jsonl. Throws
// rv::Error("dir/file: problem") for missing or malformed files.
nlohmann::json build_report(const std::vector<std::filesystem::path>& runs,
                            const ReportOptions& opt);
std::string report_markdown(const nlohmann::json& report);
std::string report_svg(const nlohmann::json& report);

// Writes REPORT.md plus REPORT.json and REPORT.svg next to it (same stem).
void write_report(const nlohmann::json& report, const std::filesystem::path& md_path);

}  // namespace rv::eval
