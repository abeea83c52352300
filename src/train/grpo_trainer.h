// GRPO training (DeepSeekMath's Group Relative Policy Optimization, as TRL's
// GRPOTrainer runs it) of a TrainModel policy.
//
// One step: draw `prompts` prompts (a pure function of (seed, step)); sample
// `group` completions for each from the current policy through the built-in
// engine over the policy's in-memory weights (engine::Model::from_memory:
// no disk round trip); score them with the caller's reward; compute group
// advantages (train/grpo.h); take the old policy's log-probs with the
// training forward; then `mu` optimizer updates on the clipped-ratio
// objective with an optional k3 KL penalty to a frozen reference.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "train/grpo.h"
#include "train/model.h"

namespace rv::train {

struct GrpoReward {
  double reward = 0;
  bool correct = false;  // for the accuracy curve
};
// Scores completion `tokens` (stop token included when it stopped) of prompt `prompt`.
using RewardFn =
    std::function<GrpoReward(int prompt, const std::vector<int32_t>& tokens, bool stopped)>;

struct GrpoTrainOptions {
  int steps = 60;
  int prompts = 32;  // per step
  int group = 8;     // samples per prompt (G)
  int max_tokens = 96;
  float temperature = 1.0f;
  int mu = 2;  // optimizer updates per batch of samples
  double lr = 3e-5;
  int warmup = 0;
  double min_lr_ratio = 1.0;  // constant after warmup by default, as TRL's GRPO recipes
  double weight_decay = 0.0;
  double clip = 1.0;
  GrpoOptions loss;           // max_completion_length defaults to max_tokens
  bool scale_rewards = true;  // false: Dr. GRPO advantages (no std division)
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;
  int max_batch = 256;  // sequences sampled at once
  int bos = -1, eos = -1;
};

struct GrpoStepLog {
  int step = 0, steps = 0;
  double reward = 0;      // mean over the step's samples
  double accuracy = 0;    // share of correct samples
  double reward_std = 0;  // mean within-group std
  double kl = 0;          // mean k3 KL to the reference (0 without one)
  double entropy = 0;     // mean policy entropy over completion tokens (first update)
  double clip_frac = 0;   // share of tokens whose ratio was clipped (last update)
  double length = 0;      // mean completion length, tokens
  double grad_norm = 0, lr = 0;
  double sample_seconds = 0, train_seconds = 0;
};

struct GrpoTrainResult {
  std::vector<GrpoStepLog> log;
};

// Trains `policy` in place on `prompts` (token ids, chat-formatted, ending
// with the generation prompt). `ref` (may be null when loss.beta == 0) is the
// frozen reference. Throws rv::Error on a non-finite loss or gradient
// ("grpo: step N: ...") leaving the policy at its last good weights, and
// rv::Error("interrupted") on Ctrl-C.
GrpoTrainResult train_grpo(TrainModel& policy, TrainModel* ref,
                           const std::vector<std::vector<int32_t>>& prompts, const RewardFn& reward,
                           const GrpoTrainOptions& o,
                           const std::function<void(const GrpoStepLog&)>& on_step = {});

}  // namespace rv::train
