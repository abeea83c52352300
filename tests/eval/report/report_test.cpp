// report: McNemar / binomial p-values against textbook values computed by
// hand, bootstrap CIs, and a full report over hand-written run directories.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file.h"
#include "eval/report/report.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace rv::eval;

TEST(ReportStats, ExactBinomialMatchesHandComputedTails) {
  // b=6, c=16 (Wikipedia's McNemar example): P(X<=6 | n=22, 1/2)
  // = (1+22+231+1540+7315+26334+74613) / 2^22 = 110056 / 4194304.
  EXPECT_NEAR(binomial_two_sided_p(6, 22), 2.0 * 110056 / 4194304, 1e-12);
  // n=5, k=0: 2 * 1/32.
  EXPECT_NEAR(binomial_two_sided_p(0, 5), 2.0 / 32, 1e-15);
  // Symmetric: k and n-k give the same p; the middle is capped at 1.
  EXPECT_NEAR(binomial_two_sided_p(5, 5), 2.0 / 32, 1e-15);
  EXPECT_EQ(binomial_two_sided_p(2, 4), 1.0);
  EXPECT_EQ(binomial_two_sided_p(0, 0), 1.0);
  auto m = mcnemar(6, 16);
  EXPECT_TRUE(m.exact);
  EXPECT_NEAR(m.p_value, 2.0 * 110056 / 4194304, 1e-12);
}

TEST(ReportStats, ChiSquareWithContinuityForLargeCounts) {
  // b=30, c=12: chi2 = (|30-12|-1)^2 / 42 = 289/42; p = erfc(sqrt(chi2/2)).
  auto m = mcnemar(30, 12);
  EXPECT_FALSE(m.exact);
  EXPECT_NEAR(m.statistic, 289.0 / 42.0, 1e-12);
  // chi-square(1) survival at 6.880952...: 0.008712 (tables).
  EXPECT_NEAR(m.p_value, 0.008712, 5e-6);
}

TEST(ReportStats, BootstrapIsSeededAndBracketsTheMean) {
  std::vector<double> x(200);
  for (size_t i = 0; i < x.size(); ++i) x[i] = i % 4 == 0 ? 1 : 0;  // mean 0.25
  auto a = bootstrap_ci(x, 2000, 7), b = bootstrap_ci(x, 2000, 7), c = bootstrap_ci(x, 2000, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_LT(a.first, 0.25);
  EXPECT_GT(a.second, 0.25);
  // Normal approximation: 1.96 * sqrt(.25*.75/200) = 0.060; the percentile
  // interval must be close to it.
  EXPECT_NEAR(a.second - a.first, 2 * 1.96 * std::sqrt(0.25 * 0.75 / 200), 0.015);
  // Paired difference of a run with itself: exactly zero.
  auto d = bootstrap_diff_ci(x, x, 500, 1);
  EXPECT_EQ(d.first, 0);
  EXPECT_EQ(d.second, 0);
}

namespace {

void write_run(const fs::path& dir, const std::vector<int>& correct,
               const std::vector<std::string>& groups) {
  fs::create_directories(dir);
  std::string lines;
  double sum = 0;
  for (size_t i = 0; i < correct.size(); ++i) {
    json s = {{"doc_id", std::to_string(i)},
              {"group", groups.empty() ? "" : groups[i]},
              {"correct", correct[i] == 1},
              {"metrics", {{"exact_match,strict-match", double(correct[i])}}}};
    lines += s.dump() + "\n";
    sum += correct[i];
  }
  rv::write_file(dir / "samples_toy.jsonl", lines);
  json r = {{"results", {{"toy", {{"exact_match,strict-match", sum / correct.size()}}}}},
            {"primary_metric", {{"toy", "exact_match,strict-match"}}},
            {"config", {{"model", dir.filename().string()}}}};
  rv::write_file(dir / "results.json", r.dump());
}

}  // namespace

TEST(Report, ComparesRunsSampleBySample) {
  fs::path d = fs::temp_directory_path() / ("rv_report_" + std::to_string(::getpid()));
  fs::remove_all(d);
  // 10 docs; base right on 0-5; plus right on 0-3 and 6-9.
  std::vector<int> base = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, plus = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
  std::vector<std::string> g = {"a", "b", "a", "b", "a", "b", "a", "b", "a", "b"};
  write_run(d / "base", base, g);
  write_run(d / "plus", plus, g);
  json rep = build_report({d / "base", d / "plus"}, ReportOptions{});
  ASSERT_EQ(rep["rows"].size(), 3u);  // all, a, b
  const json& all = rep["rows"][0];
  EXPECT_EQ(all["variant"], "all");
  EXPECT_DOUBLE_EQ(all["runs"][0]["accuracy"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(all["runs"][1]["accuracy"].get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(all["runs"][1]["delta"].get<double>(), 0.2);
  EXPECT_EQ(all["runs"][1]["mcnemar"]["b"], 2);  // docs 4, 5
  EXPECT_EQ(all["runs"][1]["mcnemar"]["c"], 4);  // docs 6-9
  // Exact: 2 * P(X<=2 | n=6) = 2 * (1+6+15)/64.
  EXPECT_NEAR(all["runs"][1]["mcnemar"]["p_value"].get<double>(), 44.0 / 64, 1e-12);
  EXPECT_DOUBLE_EQ(all["runs"][0]["results_value"].get<double>(), 0.6);
  // Group a = docs 0,2,4,6,8: base 1,1,1,0,0 -> 0.6; plus 1,1,0,1,1 -> 0.8.
  const json& ga = rep["rows"][1];
  EXPECT_EQ(ga["variant"], "a");
  EXPECT_EQ(ga["entry"], "toy_a");
  EXPECT_DOUBLE_EQ(ga["runs"][0]["accuracy"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(ga["runs"][1]["accuracy"].get<double>(), 0.8);
  // Same seed -> same report.
  EXPECT_EQ(build_report({d / "base", d / "plus"}, ReportOptions{}).dump(), rep.dump());

  std::string md = report_markdown(rep);
  EXPECT_NE(md.find("| toy | all | plus | 10 | 80.0 |"), std::string::npos) << md;
  std::string svg = report_svg(rep);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t bars = 0;
  for (size_t p = svg.find("<title>"); p != std::string::npos; p = svg.find("<title>", p + 1))
    ++bars;
  EXPECT_EQ(bars, 6u);  // 3 rows x 2 runs
  write_report(rep, d / "cmp.md");
  EXPECT_TRUE(fs::exists(d / "cmp.md"));
  EXPECT_TRUE(fs::exists(d / "cmp.json"));
  EXPECT_TRUE(fs::exists(d / "cmp.svg"));
  fs::remove_all(d);
}

namespace {

// A run sampled K = 4 times per document: sample j of document i is right
// when right[i][j]; the first sample's value is the usual key.
void write_sampled_run(const fs::path& dir, const std::vector<std::vector<int>>& right) {
  fs::create_directories(dir);
  const std::string m = "exact_match,strict-match";
  std::string lines;
  double first = 0, avg = 0;
  for (size_t i = 0; i < right.size(); ++i) {
    double a = 0;
    for (int v : right[i]) a += v;
    a /= double(right[i].size());
    json s = {{"doc_id", std::to_string(i)},
              {"group", ""},
              {"correct", right[i][0] == 1},
              {"metrics",
               {{m, double(right[i][0])},
                {"avg@4:" + m, a},
                {"pass@4:" + m, a > 0 ? 1.0 : 0.0},
                {"maj@4:" + m, a > 0.5 ? 1.0 : 0.0}}}};
    lines += s.dump() + "\n";
    first += right[i][0];
    avg += a;
  }
  rv::write_file(dir / "samples_toy.jsonl", lines);
  const double n = double(right.size());
  json r = {{"results", {{"toy", {{m, first / n}, {"avg@4:" + m, avg / n}}}}},
            {"primary_metric", {{"toy", m}}},
            {"config", {{"model", dir.filename().string()}}}};
  rv::write_file(dir / "results.json", r.dump());
}

}  // namespace

// K > 1: the report compares avg@K per document (not the first sample), its
// bootstrap and paired bootstrap resample documents with their avg@K values,
// and pass@K / maj@K are shown beside it.
TEST(Report, SampledRunsCompareAvgAtKPerDocument) {
  fs::path d = fs::temp_directory_path() / ("rv_report_k_" + std::to_string(::getpid()));
  fs::remove_all(d);
  // First samples are all right in `base` and all wrong in `other`, but the
  // averages say the opposite.
  const std::vector<std::vector<int>> base = {
      {1, 0, 0, 0}, {1, 0, 0, 0}, {1, 1, 0, 0}, {1, 0, 0, 0}, {1, 0, 0, 0}};
  const std::vector<std::vector<int>> other = {
      {0, 1, 1, 1}, {0, 1, 1, 1}, {0, 0, 0, 0}, {0, 1, 1, 0}, {0, 1, 1, 1}};
  write_sampled_run(d / "base", base);
  write_sampled_run(d / "other", other);
  write_run(d / "single", {1, 0, 1, 0, 1}, {});  // K = 1 next to them
  json rep = build_report({d / "base", d / "other", d / "single"}, ReportOptions{});
  ASSERT_EQ(rep["rows"].size(), 1u);
  const json& cells = rep["rows"][0]["runs"];
  const std::vector<double> avg_base = {0.25, 0.25, 0.5, 0.25, 0.25},
                            avg_other = {0.75, 0.75, 0.0, 0.5, 0.75};
  EXPECT_EQ(cells[0]["k"], 4);
  EXPECT_EQ(cells[0]["value_metric"], "avg@4:exact_match,strict-match");
  EXPECT_DOUBLE_EQ(cells[0]["accuracy"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(cells[0]["results_value"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(cells[1]["accuracy"].get<double>(), 0.55);
  EXPECT_DOUBLE_EQ(cells[0]["pass_at_k"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(cells[0]["maj_at_k"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(cells[1]["pass_at_k"].get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(cells[1]["maj_at_k"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(cells[1]["delta"].get<double>(), 0.25);
  // The bootstraps run over the per-document avg@K values, seeded as always.
  const uint64_t row_seed = ReportOptions{}.seed + 1;
  auto ci = bootstrap_ci(avg_base, 2000, row_seed * 1000003 + 0);
  EXPECT_EQ(cells[0]["ci95"][0].get<double>(), ci.first);
  EXPECT_EQ(cells[0]["ci95"][1].get<double>(), ci.second);
  auto dci = bootstrap_diff_ci(avg_base, avg_other, 2000, row_seed * 1000003 + 7919 * 1);
  EXPECT_EQ(cells[1]["delta_ci95"][0].get<double>(), dci.first);
  EXPECT_EQ(cells[1]["delta_ci95"][1].get<double>(), dci.second);
  EXPECT_TRUE(cells[1]["mcnemar"].is_null());  // avg@K is not right/wrong
  // The K = 1 run against a sampled base: its own values, no sampled fields.
  EXPECT_FALSE(cells[2].contains("k"));
  EXPECT_DOUBLE_EQ(cells[2]["accuracy"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(cells[2]["delta"].get<double>(), 0.3);
  EXPECT_TRUE(cells[2]["mcnemar"].is_null());

  std::string md = report_markdown(rep);
  EXPECT_NE(md.find("| K | Accuracy | 95% CI | pass@K | maj@K |"), std::string::npos) << md;
  EXPECT_NE(md.find("| toy | all | base | 5 | 4 | 30.0 | ["), std::string::npos) << md;
  EXPECT_NE(md.find("| 100.0 | 0.0 | "), std::string::npos) << md;
  EXPECT_NE(md.find("| toy | all | other | 5 | 4 | 55.0 | ["), std::string::npos) << md;
  EXPECT_NE(md.find("| 80.0 | 60.0 | +25.0 | ["), std::string::npos) << md;
  EXPECT_NE(md.find("| toy | all | single | 5 | 1 | 60.0 | ["), std::string::npos) << md;
  fs::remove_all(d);
}

TEST(Report, MissingOrBrokenRunDirectoriesAreNamed) {
  fs::path d = fs::temp_directory_path() / ("rv_report_bad_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d / "empty");
  try {
    build_report({d / "empty"}, ReportOptions{});
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find((d / "empty" / "results.json").string()),
              std::string::npos)
        << e.what();
  }
  write_run(d / "r", {1, 0}, {});
  fs::remove(d / "r" / "samples_toy.jsonl");
  try {
    build_report({d / "r"}, ReportOptions{});
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_EQ(std::string(e.what()), (d / "r" / "samples_toy.jsonl").string() +
                                         ": missing (the run directory is incomplete)");
  }
  rv::write_file(d / "r" / "samples_toy.jsonl", "{\"doc_id\": \"0\"}\n");
  try {
    build_report({d / "r"}, ReportOptions{});
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("samples_toy.jsonl:1: malformed sample"),
              std::string::npos)
        << e.what();
  }
  fs::remove_all(d);
}
