// The GRPO loss against a float64 PyTorch reference written from the
// published definitions in TRL's shape (grpo_reference.py: advantages,
// ratios, clipping, k3 KL, each aggregation, dlogits by autograd), plus
// properties that hold by definition: the unclipped gradient at ratio 1,
// exactly-zero gradients where clipping applies, and k3 >= 0.
#include "train/grpo.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <algorithm>
#include <cmath>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "engine/sampling.h"
#include "support/temp_dir.h"

namespace rv::train {
namespace {

using json = nlohmann::json;

// A fixed batch: `rows` logits rows over `vocab`, sequences of several
// lengths (one with no scored token), old log-probs within ±0.5 of the
// current ones (ratios 0.61..1.65, both sides of the clip band) and
// reference log-probs within ±1.
struct Fixture {
  int vocab = 11;
  std::vector<float> logits;
  std::vector<ScoredToken> tokens;
  std::vector<double> rewards = {1.0, 0.0, 0.5, 0.0, 0.0, 1.0, 0.25, 0.75};
  int group = 4;
  int max_len = 5;
};

Fixture make_fixture() {
  Fixture f;
  engine::Rng rng(42);
  const std::vector<int> lengths = {3, 1, 5, 0, 4, 2, 5, 3};
  int rows = 0;
  for (int n : lengths) rows += n + 1;  // a spare, unscored row per sequence
  for (int i = 0; i < rows * f.vocab; ++i)
    f.logits.push_back(static_cast<float>((rng.uniform() * 2 - 1) * 3));
  int row = 0;
  for (int s = 0; s < static_cast<int>(lengths.size()); ++s) {
    ++row;
    for (int k = 0; k < lengths[s]; ++k, ++row) {
      ScoredToken t;
      t.row = row;
      t.id = static_cast<int32_t>(rng.next() % f.vocab);
      t.seq = s;
      f.tokens.push_back(t);
    }
  }
  std::vector<int64_t> r;
  std::vector<int32_t> ids;
  for (const auto& t : f.tokens) {
    r.push_back(t.row);
    ids.push_back(t.id);
  }
  const auto l = token_logprobs(f.logits, f.vocab, r, ids);
  for (size_t i = 0; i < f.tokens.size(); ++i) {
    f.tokens[i].old_logprob = l[i] + (rng.uniform() - 0.5);
    f.tokens[i].ref_logprob = l[i] + (rng.uniform() * 2 - 1);
  }
  return f;
}

double rel(double a, double b) {
  return std::abs(a - b) / std::max(1e-12, std::max(std::abs(a), std::abs(b)));
}

struct Config {
  double beta, eps_low, eps_high;
  bool scale_by_std;
};
const Config kConfigs[] = {{0.0, 0.2, 0.2, true}, {0.04, 0.2, 0.28, false}, {0.5, 0.1, 0.3, true}};

// The reference's results for every configuration, from one Python run
// (importing torch takes seconds); null when /usr/bin/python3 lacks torch
// (the script exits 77).
const json& reference() {
  static const json out = [] {
    const Fixture f = make_fixture();
    rv_test::TmpDir tmp("grpo");
    json in;
    in["vocab"] = f.vocab;
    in["logits"] = f.logits;
    in["tokens"] = json::array();
    for (const auto& t : f.tokens)
      in["tokens"].push_back({t.row, t.id, t.seq, t.old_logprob, t.ref_logprob});
    in["rewards"] = f.rewards;
    in["group"] = f.group;
    in["max_completion_length"] = f.max_len;
    in["configs"] = json::array();
    for (const Config& c : kConfigs)
      in["configs"].push_back({{"scale_by_std", c.scale_by_std},
                               {"epsilon_low", c.eps_low},
                               {"epsilon_high", c.eps_high},
                               {"beta", c.beta}});
    std::ofstream(tmp.p / "in.json") << in.dump();
    const std::string cmd = "/usr/bin/python3 " RV_SOURCE_DIR "/tests/train/grpo_reference.py " +
                            (tmp.p / "in.json").string() + " " + (tmp.p / "out.json").string();
    const int rc = std::system(cmd.c_str());
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) return json();
    if (rc != 0) throw Error(cmd + ": failed");
    return json::parse(std::ifstream(tmp.p / "out.json"));
  }();
  return out;
}

class GrpoVsTorch : public ::testing::TestWithParam<int> {};

TEST_P(GrpoVsTorch, LossStatsAndGradientsMatchEveryAggregation) {
  if (reference().is_null())
    GTEST_SKIP() << "/usr/bin/python3 has no torch (python3-torch): no reference";
  const Config c = kConfigs[GetParam()];
  const Fixture f = make_fixture();
  const json& out = reference()["results"][GetParam()];

  const auto adv = group_advantages(f.rewards, f.group, c.scale_by_std);
  ASSERT_EQ(adv.size(), out["advantages"].size());
  for (size_t i = 0; i < adv.size(); ++i)
    EXPECT_LT(rel(adv[i], out["advantages"][i].get<double>()), 1e-9) << "advantage " << i;

  const std::pair<LossAggregation, const char*> aggs[] = {{LossAggregation::kSequenceMean, "grpo"},
                                                          {LossAggregation::kTokenMean, "bnpo"},
                                                          {LossAggregation::kConstant, "dr_grpo"}};
  bool saw_low = false, saw_high = false;
  for (const auto& [agg, name] : aggs) {
    SCOPED_TRACE(name);
    GrpoOptions o;
    o.beta = c.beta;
    o.epsilon_low = c.eps_low;
    o.epsilon_high = c.eps_high;
    o.aggregation = agg;
    o.max_completion_length = f.max_len;
    std::vector<float> d;
    const GrpoStats st = grpo_loss(f.logits, f.vocab, f.tokens, adv, o, d);
    const json& r = out[name];
    EXPECT_LT(rel(st.loss, r["loss"].get<double>()), 1e-6) << st.loss << " vs " << r["loss"];
    EXPECT_LT(rel(st.kl, r["kl"].get<double>()), 1e-6);
    EXPECT_LT(rel(st.entropy, r["entropy"].get<double>()), 1e-6);
    EXPECT_LT(rel(st.ratio, r["ratio"].get<double>()), 1e-6);
    EXPECT_DOUBLE_EQ(st.clip_low, r["clip_low"].get<double>());
    EXPECT_DOUBLE_EQ(st.clip_high, r["clip_high"].get<double>());
    saw_low |= st.clip_low > 0;
    saw_high |= st.clip_high > 0;
    EXPECT_EQ(st.tokens, static_cast<int64_t>(f.tokens.size()));
    const auto& want = r["dlogits"];
    ASSERT_EQ(d.size(), want.size());
    double scale = 0, err = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const double w = want[i].get<double>();
      scale = std::max(scale, std::abs(w));
      err = std::max(err, std::abs(d[i] - w));
    }
    EXPECT_GT(scale, 0);
    EXPECT_LT(err / scale, 1e-6);
  }
  // The fixture exercises both clipped sides, or the comparison proves less.
  EXPECT_TRUE(saw_low);
  EXPECT_TRUE(saw_high);
}

INSTANTIATE_TEST_SUITE_P(Configs, GrpoVsTorch, ::testing::Range(0, 3));

// softmax of one row, in double.
std::vector<double> softmax(const float* x, int n) {
  double mx = *std::max_element(x, x + n), s = 0;
  std::vector<double> p(n);
  for (int i = 0; i < n; ++i) s += (p[i] = std::exp(x[i] - mx));
  for (double& v : p) v /= s;
  return p;
}

// With l = l_old (ratio 1, inside any band) and beta = 0 the per-token loss
// is -A, so d loss / d l = -A / normaliser and dlogits = that · (onehot - p).
TEST(GrpoLoss, AtRatioOneTheGradientIsMinusAdvantageOverTheNormaliser) {
  Fixture f = make_fixture();
  std::vector<int64_t> rows;
  std::vector<int32_t> ids;
  for (const auto& t : f.tokens) {
    rows.push_back(t.row);
    ids.push_back(t.id);
  }
  const auto l = token_logprobs(f.logits, f.vocab, rows, ids);
  for (size_t i = 0; i < f.tokens.size(); ++i) f.tokens[i].old_logprob = l[i];
  const auto adv = group_advantages(f.rewards, f.group, true);
  std::vector<int> per_seq(adv.size(), 0);
  for (const auto& t : f.tokens) ++per_seq[t.seq];
  const double S = static_cast<double>(adv.size()), N = static_cast<double>(f.tokens.size());
  for (auto agg :
       {LossAggregation::kSequenceMean, LossAggregation::kTokenMean, LossAggregation::kConstant}) {
    GrpoOptions o;
    o.aggregation = agg;
    o.max_completion_length = f.max_len;
    o.beta = 0;
    std::vector<float> d;
    const GrpoStats st = grpo_loss(f.logits, f.vocab, f.tokens, adv, o, d);
    EXPECT_DOUBLE_EQ(st.ratio, 1.0);
    double want_loss = 0;
    std::vector<double> want(d.size(), 0.0);
    for (const auto& t : f.tokens) {
      const double norm = agg == LossAggregation::kSequenceMean ? per_seq[t.seq] * S
                          : agg == LossAggregation::kTokenMean  ? N
                                                                : S * f.max_len;
      const double g = -adv[t.seq] / norm;
      want_loss += g;
      const auto p = softmax(&f.logits[t.row * f.vocab], f.vocab);
      for (int v = 0; v < f.vocab; ++v) want[t.row * f.vocab + v] += g * ((v == t.id) - p[v]);
    }
    EXPECT_NEAR(st.loss, want_loss, 1e-12);
    for (size_t i = 0; i < d.size(); ++i) ASSERT_NEAR(d[i], want[i], 1e-7) << i;
  }
}

// One sequence per token, each alone on its row, at a chosen ratio and
// advantage sign: the gradient is exactly zero iff the ratio is outside the
// band on the side the advantage's sign clips.
TEST(GrpoLoss, ClippingZeroesTheGradientExactlyOnTheClippedSide) {
  const int V = 5;
  std::vector<float> logits = {0.3f, -1.0f, 2.0f, 0.1f, 0.5f};
  const int32_t id = 2;
  const double l = token_logprobs(logits, V, {0}, {id})[0];
  for (double ratio : {0.5, 0.79, 0.81, 1.0, 1.19, 1.21, 2.0})
    for (double A : {1.0, -1.0}) {
      ScoredToken t;
      t.row = 0;
      t.id = id;
      t.seq = 0;
      t.old_logprob = l - std::log(ratio);
      GrpoOptions o;
      o.epsilon_low = o.epsilon_high = 0.2;
      std::vector<float> d;
      const GrpoStats st = grpo_loss(logits, V, {t}, {A}, o, d);
      const bool clipped = (A > 0 && ratio > 1.2) || (A < 0 && ratio < 0.8);
      bool all_zero = std::all_of(d.begin(), d.end(), [](float x) { return x == 0.0f; });
      EXPECT_EQ(all_zero, clipped) << "ratio " << ratio << " A " << A;
      EXPECT_EQ(st.clip_high, (A > 0 && ratio > 1.2) ? 1.0 : 0.0);
      EXPECT_EQ(st.clip_low, (A < 0 && ratio < 0.8) ? 1.0 : 0.0);
      // The objective is the clipped one: -min(r·A, clip(r)·A).
      const double want = -std::min(ratio * A, std::clamp(ratio, 0.8, 1.2) * A);
      EXPECT_NEAR(st.loss, want, 1e-12);
    }
}

TEST(GrpoLoss, K3IsNonNegativeAndZeroAtTheReference) {
  const int V = 6;
  std::vector<float> logits = {1.0f, 0.0f, -0.5f, 2.5f, 0.7f, -2.0f};
  const double l = token_logprobs(logits, V, {0}, {3})[0];
  GrpoOptions o;
  o.beta = 1.0;
  for (double off : {-3.0, -1.0, -0.1, -1e-3, 0.0, 1e-3, 0.1, 1.0, 3.0}) {
    ScoredToken t{0, 3, 0, l, l + off};
    std::vector<float> d;
    const GrpoStats st = grpo_loss(logits, V, {t}, {0.0}, o, d);  // A = 0: the loss is β·k3
    EXPECT_GE(st.kl, 0.0) << off;
    EXPECT_DOUBLE_EQ(st.loss, st.kl);
    if (off == 0.0) {
      EXPECT_EQ(st.kl, 0.0);
      for (float x : d) EXPECT_EQ(x, 0.0f);
    } else {
      EXPECT_GT(st.kl, 0.0) << off;
    }
  }
}

TEST(GroupAdvantages, UnbiasedStdAndEqualRewardsGiveZero) {
  const auto a = group_advantages({1, 0, 0, 2, 2, 2}, 3, true);
  // Group 1: mean 1/3, unbiased std sqrt(1/3).
  const double sd = std::sqrt(((4.0 / 9) + 2 * (1.0 / 9)) / 2);
  EXPECT_NEAR(a[0], (2.0 / 3) / (sd + 1e-4), 1e-12);
  EXPECT_NEAR(a[1], (-1.0 / 3) / (sd + 1e-4), 1e-12);
  EXPECT_EQ(a[3], 0.0);
  EXPECT_EQ(a[5], 0.0);
  const auto b = group_advantages({1, 0, 0, 2, 2, 2}, 3, false);
  EXPECT_NEAR(b[0], 2.0 / 3, 1e-12);
  EXPECT_THROW(group_advantages({1, 2, 3}, 2, true), Error);
  EXPECT_THROW(group_advantages({1, 2}, 1, true), Error);
}

TEST(GrpoLoss, RejectsOutOfRangeInput) {
  std::vector<float> logits(8, 0.0f), d;
  auto message = [&](ScoredToken t, GrpoOptions o = {}) {
    try {
      grpo_loss(logits, 4, {t}, {1.0}, o, d);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({2, 0, 0, 0, 0}).find("logits row 2"), std::string::npos);
  EXPECT_NE(message({0, 4, 0, 0, 0}).find("token id 4"), std::string::npos);
  EXPECT_NE(message({0, 1, 1, 0, 0}).find("sequence 1"), std::string::npos);
  GrpoOptions c;
  c.aggregation = LossAggregation::kConstant;
  EXPECT_NE(message({0, 1, 0, 0, 0}, c).find("max_completion_length"), std::string::npos);
  EXPECT_THROW(grpo_loss(std::vector<float>(7), 4, {}, {}, {}, d), Error);
}

}  // namespace
}  // namespace rv::train
