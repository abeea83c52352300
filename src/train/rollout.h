// Rollouts for GRPO: `group` sampled completions of every prompt from the
// current policy, through the engine (engine::Model, typically built with
// Model::from_memory over the training weights), batched over all prompts.
//
//   rv::train::RolloutOptions ro{.group = 8, .max_tokens = 64, .seed = step};
//   auto done = rv::train::sample_group(*model, prompts, ro);  // prompt-major
//
// Sampling is the engine's (engine/sampling.h: temperature, then top-k,
// then top-p), with one RNG stream per (prompt, sample) derived from the
// seed, so the completions depend on the seed only, not on max_batch or on
// how sequences share forward passes (the engine's logits for a token do
// not depend on what else is in its batch).
//
// Thread-safety: drives `m` from the calling thread; one call at a time
// per Model.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model.h"

namespace rv::train {

struct RolloutOptions {
  int group = 8;                  // samples per prompt (>= 1)
  int max_tokens = 64;            // completion length cap (>= 1)
  float temperature = 1.0f;       // 0: greedy (argmax, ties -> lowest id)
  float top_p = 1.0f;             // 1: off
  int top_k = 0;                  // 0: off
  uint64_t seed = 0;              // same seed, same completions
  std::vector<int32_t> stop_ids;  // a completion ends after emitting one of these
  int max_batch = 256;            // sequences decoded at once (KV cache slots)
};

struct Completion {
  int prompt = 0;               // index into the prompts
  std::vector<int32_t> tokens;  // sampled ids
  bool stopped = false;         // ended with a stop id, included as the last token
};

// For each prompt, `group` completions, returned prompt-major
// (result[p * group + j] is sample j of prompt p). Continuous batching over
// min(max_batch, prompts × group) KV-cache slots: every forward pass feeds
// one token per live sequence and prefills newly admitted prompts; a
// prompt's K/V is computed once and copied to the other samples of its
// group. Throws rv::Error for an empty prompt, group / max_tokens /
// max_batch < 1, a negative temperature, or token ids outside the
// vocabulary.
std::vector<Completion> sample_group(engine::Model& m,
                                     const std::vector<std::vector<int32_t>>& prompts,
                                     const RolloutOptions& o);

}  // namespace rv::train
