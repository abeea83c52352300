#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace rv::engine {

uint64_t Rng::next() {
  uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Rng::uniform() {
  return (next() >> 11) * (1.0 / 9007199254740992.0);
}

int32_t argmax(const float* x, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

double log_sum_exp(const float* x, int n) {
  return log_sum_exp(x, n, argmax(x, n));
}

double log_sum_exp(const float* x, int n, int32_t argmax_id) {
  const double mx = x[argmax_id];
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - mx);
  return mx + std::log(s);
}

double log_softmax_at(const float* x, int n, int32_t id) {
  return x[id] - log_sum_exp(x, n);
}

namespace {

// Ids of the `k` largest logits, most likely first (ties -> lower id).
// Logprob requests ask for a handful of alternatives over a vocabulary of
// ~150k: one pass with a small sorted window beats sorting an index array
// of the whole row (and its allocation, a fresh mmap per row at that size).
std::vector<int32_t> top_ids(const float* x, int n, int k) {
  k = std::min(k, n);
  auto better = [x](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
  std::vector<int32_t> best;
  if (k <= 0) return best;
  if (k > 64) {
    std::vector<int32_t> ids(n);
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), better);
    ids.resize(k);
    return ids;
  }
  best.reserve(k + 1);
  for (int32_t i = 0; i < n; ++i) {
    if (static_cast<int>(best.size()) == k && !better(i, best.back())) continue;
    auto pos = std::upper_bound(best.begin(), best.end(), i,
                                [&](int32_t a, int32_t b) { return better(a, b); });
    best.insert(pos, i);
    if (static_cast<int>(best.size()) > k) best.pop_back();
  }
  return best;
}

}  // namespace

std::vector<TopLogprob> top_logprobs(const float* x, int n, int k) {
  return top_logprobs(x, n, k, log_sum_exp(x, n));
}

std::vector<TopLogprob> top_logprobs(const float* x, int n, int k, double lse) {
  std::vector<TopLogprob> out;
  for (int32_t id : top_ids(x, n, k)) out.push_back({id, x[id] - lse});
  return out;
}

std::vector<std::pair<int32_t, double>> sampling_candidates(const float* x, int n,
                                                            const SamplingParams& p) {
  const double t = p.temperature > 0 ? p.temperature : 1.0;
  const double mx = x[argmax(x, n)];
  // Unnormalised probabilities exp((x - max) / t) over the whole row.
  std::vector<double> w(n);
  double total = 0;
  for (int i = 0; i < n; ++i) total += (w[i] = std::exp((x[i] - mx) / t));
  // Candidate pool, most likely first. Top-p and min-p both keep a prefix
  // of the sorted order, so without top-k the sorted prefix grows only until
  // one of them is decided; a full-vocabulary sort is rare.
  const bool need_p = p.top_p<1.0f, need_min = p.min_p> 0.0f;
  const double wmax = 1.0;  // w of the argmax
  auto cmp = [&](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  int sorted = 0;
  if (p.top_k > 0) {
    sorted = std::min(p.top_k, n);
    std::partial_sort(ids.begin(), ids.begin() + sorted, ids.end(), cmp);
  } else if (!need_p && !need_min) {
    std::sort(ids.begin(), ids.end(), cmp);
    sorted = n;
  } else {
    for (int want = std::min(64, n);; want = std::min(n, want * 4)) {
      std::partial_sort(ids.begin() + sorted, ids.begin() + want, ids.end(), cmp);
      sorted = want;
      if (want == n) break;
      double mass = 0;
      for (int i = 0; i < want; ++i) mass += w[ids[i]];
      if (need_p && mass >= p.top_p * total) break;
      if (need_min && w[ids[want - 1]] < p.min_p * wmax) break;
    }
  }
  ids.resize(sorted);
  // top-k renormalisation: top-p is measured within the top-k set.
  double k_total = 0;
  if (p.top_k > 0)
    for (int32_t id : ids) k_total += w[id];
  else
    k_total = total;
  std::vector<std::pair<int32_t, double>> out;
  double cum = 0;
  for (int32_t id : ids) {
    if (need_min && w[id] < p.min_p * wmax) break;
    out.push_back({id, w[id]});
    cum += w[id];
    if (need_p && cum >= p.top_p * k_total) break;  // smallest prefix reaching top_p
  }
  for (auto& [id, pr] : out) pr /= cum;
  return out;
}

int32_t sample_token(const float* x, int n, const SamplingParams& p, Rng& rng) {
  if (p.temperature <= 0) return argmax(x, n);
  if (p.top_k <= 0 && p.top_p >= 1.0f && p.min_p <= 0.0f) {
    // Plain temperature sampling: one pass in id order, no sorting.
    const double mx = x[argmax(x, n)], t = p.temperature;
    double total = 0;
    for (int i = 0; i < n; ++i) total += std::exp((x[i] - mx) / t);
    double u = rng.uniform() * total;
    for (int i = 0; i < n; ++i) {
      const double w = std::exp((x[i] - mx) / t);
      if (u < w) return i;
      u -= w;
    }
    return argmax(x, n);
  }
  auto cand = sampling_candidates(x, n, p);
  double u = rng.uniform();
  for (const auto& [id, pr] : cand) {
    if (u < pr) return id;
    u -= pr;
  }
  return cand.back().first;  // rounding: u landed past the last mass
}

}  // namespace rv::engine
