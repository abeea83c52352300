#include "train/grpo.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace rv::train {
namespace {

constexpr const char* kWhere = "grpo";

// Rows of the [N][vocab] logits, checking the layout once.
int64_t row_count(const std::vector<float>& logits, int vocab) {
  if (vocab < 1) throw Error(kWhere, "vocab must be >= 1");
  if (logits.size() % static_cast<size_t>(vocab) != 0)
    throw Error(kWhere, "logits size " + std::to_string(logits.size()) +
                            " is not a multiple of the vocabulary (" + std::to_string(vocab) + ")");
  return static_cast<int64_t>(logits.size() / static_cast<size_t>(vocab));
}

void check_token(int64_t row, int32_t id, int64_t rows, int vocab) {
  if (row < 0 || row >= rows)
    throw Error(kWhere,
                "logits row " + std::to_string(row) + " outside [0, " + std::to_string(rows) + ")");
  if (id < 0 || id >= vocab)
    throw Error(kWhere, "token id " + std::to_string(id) + " outside the vocabulary (" +
                            std::to_string(vocab) + ")");
}

double row_lse(const float* x, int n) {
  double mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(x[i] - mx);
  return mx + std::log(s);
}

}  // namespace

std::vector<double> group_advantages(const std::vector<double>& rewards, int group,
                                     bool scale_by_std) {
  if (group < 2) throw Error(kWhere, "group size must be >= 2 (got " + std::to_string(group) + ")");
  if (rewards.size() % static_cast<size_t>(group) != 0)
    throw Error(kWhere, std::to_string(rewards.size()) + " rewards do not split into groups of " +
                            std::to_string(group));
  std::vector<double> adv(rewards.size());
  for (size_t g = 0; g < rewards.size(); g += group) {
    double mean = 0;
    for (int j = 0; j < group; ++j) mean += rewards[g + j];
    mean /= group;
    double ss = 0;
    for (int j = 0; j < group; ++j) ss += (rewards[g + j] - mean) * (rewards[g + j] - mean);
    const double sd = std::sqrt(ss / (group - 1));
    for (int j = 0; j < group; ++j) {
      const double a = rewards[g + j] - mean;
      adv[g + j] = scale_by_std ? a / (sd + 1e-4) : a;
    }
  }
  return adv;
}

GrpoStats grpo_loss(const std::vector<float>& logits, int vocab,
                    const std::vector<ScoredToken>& tokens, const std::vector<double>& advantages,
                    const GrpoOptions& o, std::vector<float>& dlogits) {
  const int64_t rows = row_count(logits, vocab);
  const int64_t S = static_cast<int64_t>(advantages.size());
  std::vector<int64_t> per_seq(advantages.size(), 0);
  for (const ScoredToken& t : tokens) {
    check_token(t.row, t.id, rows, vocab);
    if (t.seq < 0 || t.seq >= S)
      throw Error(kWhere, "sequence " + std::to_string(t.seq) + " outside the " +
                              std::to_string(S) + " advantages");
    ++per_seq[t.seq];
  }
  if (o.aggregation == LossAggregation::kConstant && o.max_completion_length < 1)
    throw Error(kWhere, "the constant (Dr. GRPO) aggregation needs max_completion_length >= 1");

  dlogits.assign(logits.size(), 0.0f);
  GrpoStats st;
  st.tokens = static_cast<int64_t>(tokens.size());
  if (tokens.empty()) return st;
  const double n_tok = static_cast<double>(tokens.size());
  const double lo = 1.0 - o.epsilon_low, hi = 1.0 + o.epsilon_high;
  std::vector<double> p(static_cast<size_t>(vocab));
  for (const ScoredToken& t : tokens) {
    // Each token's weight in the aggregated loss.
    double w = 0;
    switch (o.aggregation) {
      case LossAggregation::kSequenceMean:
        w = 1.0 / (static_cast<double>(per_seq[t.seq]) * static_cast<double>(S));
        break;
      case LossAggregation::kTokenMean:
        w = 1.0 / n_tok;
        break;
      case LossAggregation::kConstant:
        w = 1.0 / (static_cast<double>(S) * o.max_completion_length);
        break;
    }
    const float* x = &logits[static_cast<size_t>(t.row) * vocab];
    const double lse = row_lse(x, vocab);
    double ent = lse;
    for (int v = 0; v < vocab; ++v) {
      p[v] = std::exp(x[v] - lse);
      ent -= p[v] * x[v];
    }
    const double l = x[t.id] - lse;
    const double A = advantages[t.seq];
    const double ratio = std::exp(l - t.old_logprob);
    const double clipped = std::clamp(ratio, lo, hi);
    // The min picks the clipped (constant) term only outside the band on the
    // side where clipping lowers the objective; there the gradient is 0.
    const bool cut_low = ratio < lo && A<0, cut_high = ratio> hi && A > 0;
    double per_token = -std::min(ratio * A, clipped * A);
    double dl = (cut_low || cut_high) ? 0.0 : -A * ratio;  // d per_token / d l
    if (o.beta != 0) {
      const double d = t.ref_logprob - l;
      const double kl = std::exp(d) - d - 1;
      per_token += o.beta * kl;
      dl += o.beta * (1.0 - std::exp(d));
      st.kl += kl;
    }
    st.loss += w * per_token;
    st.clip_low += cut_low;
    st.clip_high += cut_high;
    st.entropy += ent;
    st.ratio += ratio;
    // d l / d x_v = [v == id] - p_v.
    const double g = w * dl;
    float* d = &dlogits[static_cast<size_t>(t.row) * vocab];
    for (int v = 0; v < vocab; ++v) d[v] += static_cast<float>(g * ((v == t.id) - p[v]));
  }
  st.kl /= n_tok;
  st.clip_low /= n_tok;
  st.clip_high /= n_tok;
  st.entropy /= n_tok;
  st.ratio /= n_tok;
  return st;
}

std::vector<double> token_logprobs(const std::vector<float>& logits, int vocab,
                                   const std::vector<int64_t>& rows,
                                   const std::vector<int32_t>& ids) {
  const int64_t n = row_count(logits, vocab);
  if (rows.size() != ids.size())
    throw Error(kWhere, "token_logprobs: " + std::to_string(rows.size()) + " rows for " +
                            std::to_string(ids.size()) + " ids");
  std::vector<double> out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    check_token(rows[i], ids[i], n, vocab);
    const float* x = &logits[static_cast<size_t>(rows[i]) * vocab];
    out[i] = x[ids[i]] - row_lse(x, vocab);
  }
  return out;
}

}  // namespace rv::train
