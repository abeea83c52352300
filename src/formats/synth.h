// Synthesized Hugging Face model directories: the test fixtures and the
// built-in default for `make demo`. Weights are seeded Gaussian noise whose
// value at (tensor, index) depends only on (seed, tensor name, index), so two
// models with the same seed are identical and any tensor can be regenerated
// independently (and in parallel).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "formats/dtype.h"

namespace rv {

struct SynthOptions {
  std::string arch = "qwen2";  // qwen2 | qwen3 | llama
  int layers = 2;
  int hidden = 64;
  int heads = 4;
  int kv_heads = 2;
  int head_dim = 0;            // 0: hidden / heads
  int intermediate = 128;
  int vocab = 0;               // 0: from the tokenizer, else 256
  std::filesystem::path tokenizer_dir;  // copy tokenizer files from here
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  int shards = 1;              // >1: split into this many shards with an index
  bool tied = false;           // tie_word_embeddings (no lm_head.weight)
  float init_scale = 0.02f;    // std-dev of weight matrices
  double rope_theta = 1000000.0;
  int max_position_embeddings = 32768;
  // Adds seeded noise of this std-dev on top of the seed-derived weights so
  // "related" models (SFT / GRPO / instruct of one lineage) can be made:
  // same `seed`, different `delta_seed`.
  float delta_scale = 0.0f;
  uint64_t delta_seed = 0;
};

// Writes config.json, generation_config.json, weights (and tokenizer files
// when tokenizer_dir is set) into `out`, atomically. Throws on bad options.
void synth_model(const SynthOptions& opt, const std::filesystem::path& out, bool force);

// The deterministic N(0,1) stream used for weights; exposed for tests.
float synth_normal(uint64_t seed, uint64_t stream, uint64_t index);
uint64_t hash_name(const std::string& s);

// Vocabulary size implied by a tokenizer directory (largest id + 1 over
// tokenizer.json's model vocab and added tokens, or vocab.json plus
// tokenizer_config.json's added_tokens_decoder).
int tokenizer_vocab_size(const std::filesystem::path& dir);

}  // namespace rv
