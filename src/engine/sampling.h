// Next-token selection and log-probabilities from one row of logits.
//
// Filters apply in Hugging Face's order: temperature, then top-k, then top-p
// (over the distribution renormalised after top-k), then min-p (relative to
// the most likely token). Probabilities are computed in double.
// All functions are pure; a Sampler's state is its RNG.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace rv::engine {

// Small, fast, fully specified PRNG (SplitMix64), so a seed gives the same
// samples on every platform and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next();
  double uniform();  // [0, 1), 53 bits

 private:
  uint64_t s_;
};

// Index of the largest logit (ties -> lowest id).
int32_t argmax(const float* logits, int n);

// log p(id) under log-softmax(logits), in double.
double log_softmax_at(const float* logits, int n, int32_t id);
// log-sum-exp of the row, in double; the second form takes the row's
// argmax when the caller has it (one pass over the vocabulary fewer).
double log_sum_exp(const float* logits, int n);
double log_sum_exp(const float* logits, int n, int32_t argmax_id);

// The k most likely ids with their log-probabilities, most likely first
// (ties -> lower id first).
// `lse` is log_sum_exp(logits, n) when the caller already has it.
std::vector<TopLogprob> top_logprobs(const float* logits, int n, int k);
std::vector<TopLogprob> top_logprobs(const float* logits, int n, int k, double lse);

// The candidates sampling can return for `p` (temperature > 0) and their
// renormalised probabilities, most likely first. Exposed for tests.
std::vector<std::pair<int32_t, double>> sampling_candidates(const float* logits, int n,
                                                            const SamplingParams& p);

// Greedy when p.temperature <= 0, else one draw from sampling_candidates.
int32_t sample_token(const float* logits, int n, const SamplingParams& p, Rng& rng);

}  // namespace rv::engine
