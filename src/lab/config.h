// The lab config (YAML) and its built-in presets.
//
// `reasonvec lab [CONFIG.yaml] -o DIR` trains a whole lineage on a synthetic
// task and measures reasoning-vector transfer (lab/pipeline.h). Every field
// has a default (the `default` preset); `quick` is the demo's smaller one.
// A config file overrides the preset it names (`preset:`, default
// `default`) key by key. Unknown keys, sizes that do not divide, and a
// vocabulary too small for the special tokens are one-line errors
// "FILE:LINE: section.key: problem".
//
//   preset: quick | default
//   seed: 0                    # first seed; seeds N runs seed, seed+1, ...
//   seeds: 1
//   threads: 0                 # 0: all cores
//   task:      {min_ops, max_ops, max_operand, max_value, distractor_rate}
//   tokenizer: {vocab_size, corpus_docs}
//   model:     {hidden, layers, heads, kv_heads, intermediate, tied, max_position, rope_theta}
//   pretrain:  {steps, rows, seq_len, lr, warmup, weight_decay, docs}
//   instruct:  {steps, rows, seq_len, lr, warmup, weight_decay, problems, skills}
//   sft:       {steps, rows, seq_len, lr, warmup, weight_decay, problems}
//   grpo:      {init: sft|base|both, steps, prompts, group, max_tokens, temperature,
//               mu, lr, warmup, weight_decay, beta, epsilon, epsilon_high,
//               loss: token_mean|sequence_mean|constant, scale_rewards, format_reward}
//   eval:      {n, splits: [...], alphas: [...], random: true, reverse: true, max_batch}
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/model.h"

namespace rv::lab {

// Field defaults are only the starting point of the presets (lab_preset).
struct LabTask {
  int min_ops = 2, max_ops = 4;
  int max_operand = 20;
  int max_value = 199;
  double distractor_rate = 0.1;
};

struct LabTokenizer {
  int vocab_size = 1024;
  int corpus_docs = 20000;  // documents the BPE is trained on
};

// One supervised stage (pretraining, the instruct target, the SFT sibling).
struct LabStage {
  int steps = 200;
  int rows = 16;
  int seq_len = 256;
  double lr = 1e-3;
  int warmup = 20;
  double weight_decay = 0.1;
  int docs = 0;      // pretrain: corpus documents
  int problems = 0;  // instruct/sft: task problems in the mix
  int skills = 0;    // instruct: other-skill chat pairs in the mix
};

struct LabGrpo {
  std::vector<std::string> init = {"sft"};  // "sft" and/or "base"
  int steps = 60;
  int prompts = 32;
  int group = 8;
  int max_tokens = 96;
  double temperature = 1.0;
  int mu = 2;
  double lr = 3e-5;
  int warmup = 0;
  double weight_decay = 0.0;
  double beta = 0.04;
  double epsilon = 0.2, epsilon_high = 0.2;
  std::string loss = "token_mean";  // token_mean | sequence_mean | constant
  bool scale_rewards = true;        // false: Dr. GRPO (no division by the group's std)
  double format_reward = 0.0;       // added when the completion ends in "The answer is N."
};

struct LabEval {
  int n = 200;  // problems per split
  std::vector<std::string> splits = {"test_id",         "test_long", "test_bignum",
                                     "test_distractor", "test_hint", "test_reorder"};
  std::vector<double> alphas = {-1, 0, 0.5, 1, 1.5};
  bool random = true;
  bool reverse = false;
  int max_batch = 64;
};

struct LabConfig {
  std::string source;  // the YAML file, or "<preset NAME>"
  std::string preset = "default";
  uint64_t seed = 0;
  int seeds = 1;
  int threads = 0;
  LabTask task;
  LabTokenizer tokenizer;
  train::ModelShape model;
  LabStage pretrain, instruct, sft;
  LabGrpo grpo;
  LabEval eval;

  // Everything that shapes results (not threads), for cache fingerprints.
  nlohmann::json to_json() const;
};

// The built-in presets: "default" and "quick" (the demo). Throws on others.
LabConfig lab_preset(const std::string& name);
std::vector<std::string> lab_preset_names();

// Reads a config file over its preset. Throws rv::Error "FILE:LINE: key: problem".
LabConfig load_lab_config(const std::filesystem::path& yaml);
LabConfig parse_lab_config(const std::string& yaml_text, const std::string& source);

// Checks cross-field constraints (model sizes divide, vocabulary holds the
// bytes and special tokens, seq_len fits max_position, ...). Throws
// rv::Error("<source>: <section.key>: <problem>").
void validate(const LabConfig& c);

}  // namespace rv::lab
