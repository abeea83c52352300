// Metrics against independent computations (python3's math/statistics and
// hand-worked values) and lm-eval's exact_match normalisation.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "common/error.h"
#include "eval/tasks/metrics.h"
#include "task_test_util.h"

namespace rv::eval {
namespace {

ExactMatchOptions gsm_opts() {
  ExactMatchOptions o;
  o.ignore_case = true;
  o.regexes_to_ignore = {",", "\\$", "(?s).*#### ", "\\.$"};
  return o;
}

TEST(MetricsExactMatch, GsmNormalisation) {
  auto o = gsm_opts();
  // Reference is the whole GSM8K solution; "(?s).*#### " strips the work.
  std::string gold =
      "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = "
      "$<<9*2=18>>18 every day at the farmer's market.\n#### 18";
  EXPECT_EQ(exact_match("18", gold, o), 1.0);
  EXPECT_EQ(exact_match("$18.", gold, o), 1.0);
  EXPECT_EQ(exact_match("18.00", gold, o), 0.0);  // lm-eval does no numeric comparison
  EXPECT_EQ(exact_match("1,800", "#### 1800", o), 1.0);
  EXPECT_EQ(exact_match("[invalid]", gold, o), 0.0);
  EXPECT_EQ(exact_match_normalize("A #### B. ", o), "b. ");  // "\.$" only at the end
}

TEST(MetricsExactMatch, CaseAndPunctuation) {
  ExactMatchOptions o;
  EXPECT_EQ(exact_match("Yes", "yes", o), 0.0);
  o.ignore_case = true;
  EXPECT_EQ(exact_match("Yes", "yes", o), 1.0);
  EXPECT_EQ(exact_match("\xc3\x89T\xc3\x89", "\xc3\xa9t\xc3\xa9", o), 1.0);  // ÉTÉ vs été
  EXPECT_EQ(exact_match("(A)", "A", o), 0.0);
  o.ignore_punctuation = true;
  EXPECT_EQ(exact_match("(A)", "a", o), 1.0);
  // Order: regexes first, then case: a case-sensitive regex sees the original.
  ExactMatchOptions r;
  r.regexes_to_ignore = {"X"};
  r.ignore_case = true;
  EXPECT_EQ(exact_match_normalize("xXy", r), "xy");
}

TEST(MetricsPassAtK, MatchesExactCombinatorics) {
  // Oracle: 1 - C(n-c, k) / C(n, k) with exact integers in python3.
  std::string script =
      "from math import comb\nimport json\nout=[]\n"
      "for n in (1,2,5,10,20,200):\n"
      "  for c in range(0,n+1, max(1,n//7)):\n"
      "    for k in (1,2,5,10,100):\n"
      "      if k<=n: out.append([n,c,k, 1.0 - comb(n-c,k)/comb(n,k)])\n"
      "print(json.dumps(out))\n";
  auto res = testing::python_oracle(script);
  ASSERT_NE(res, "ORACLE FAILED");
  auto cases = nlohmann::json::parse(res);
  ASSERT_GT(cases.size(), 50u);
  for (const auto& c : cases)
    EXPECT_NEAR(pass_at_k(c[0], c[1], c[2]), c[3].get<double>(), 1e-12) << c.dump();
  EXPECT_DOUBLE_EQ(pass_at_k(10, 3, 1), 0.3);  // pass@1 == c/n
  EXPECT_THROW(pass_at_k(5, 6, 1), Error);
  EXPECT_THROW(pass_at_k(5, 1, 6), Error);
}

TEST(MetricsStderr, SampleStdOverSqrtN) {
  std::vector<double> v = {1, 0, 1, 1, 0, 1, 0, 0, 1, 1};
  // Hand: mean 0.6, sample variance = 10*0.24/9 = 0.26667, /10 -> 0.026667.
  EXPECT_NEAR(mean(v), 0.6, 1e-15);
  EXPECT_NEAR(mean_stderr(v), std::sqrt(0.24 * 10 / 9 / 10), 1e-15);
  EXPECT_EQ(mean_stderr({1.0}), 0.0);
  auto res = testing::python_oracle(
      "import statistics, math\nv=[0.5,2,3.25,-1,7,0,0,1]\n"
      "print(repr(statistics.stdev(v)/math.sqrt(len(v))))\n");
  ASSERT_NE(res, "ORACLE FAILED");
  EXPECT_NEAR(mean_stderr({0.5, 2, 3.25, -1, 7, 0, 0, 1}), std::stod(res), 1e-14);
}

TEST(MetricsGroups, WeightedMeanAndPooledStderr) {
  // Two subtasks: 250 items at 0.4 and 146 at 0.9 -> (100 + 131.4) / 396.
  EXPECT_NEAR(weighted_mean({0.4, 0.9}, {250, 146}), 231.4 / 396, 1e-15);
  // Pooled: sqrt(sum((n-1) se^2 n) / (N - k) / N), hand-evaluated.
  double se1 = 0.03, se2 = 0.025;
  double want = std::sqrt((249 * se1 * se1 * 250 + 145 * se2 * se2 * 146) / (396.0 - 2) / 396.0);
  EXPECT_NEAR(pooled_stderr({se1, se2}, {250, 146}), want, 1e-15);
  EXPECT_THROW(weighted_mean({1}, {1, 2}), Error);
}

TEST(MetricsMultipleChoice, AccAndAccNorm) {
  // lls: choice 1 has the best sum, choice 2 the best per-character score.
  std::vector<double> ll = {-9.0, -4.0, -6.0};
  std::vector<std::string> ch = {"ab", "a", "abcdefgh"};
  EXPECT_EQ(argmax_first(ll), 1u);
  EXPECT_EQ(acc_norm_choice(ll, ch), 2u);     // -6/8 > -4/1 > -9/2
  EXPECT_EQ(argmax_first({-1.0, -1.0}), 0u);  // ties: first, like numpy.argmax
  // Length is in code points: "été" is 3 characters, not 5 bytes.
  EXPECT_EQ(utf8_length("\xc3\xa9t\xc3\xa9"), 3u);
  EXPECT_EQ(acc_norm_choice({-3.0, -3.2}, {"\xc3\xa9t\xc3\xa9", "abcd"}), 1u);
}

}  // namespace
}  // namespace rv::eval
