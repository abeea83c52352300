// Language-model training loops over TrainModel: pretraining (every token a
// target) and supervised fine-tuning (completion tokens only; prompt tokens
// masked), with sequence packing, AdamW, warmup + cosine, gradient clipping
// and accumulation, periodic resumable checkpoints and a stop on NaN/inf.
//
// Batches are a pure function of (seed, step): step s packs examples drawn
// by a generator seeded with (seed, s), so a run resumed from a checkpoint
// at step s continues exactly as the uninterrupted run would have.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "train/model.h"

namespace rv::train {

// One training document: token ids and, per token, whether it is a target
// (predicted from the tokens before it in the same example). For SFT the
// prompt's tokens are 0 and the completion's 1; for pretraining all 1.
struct Example {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> target;  // same length as tokens
};

struct LmTrainOptions {
  int steps = 100;
  int rows = 16;       // packed rows per micro-batch
  int seq_len = 128;   // tokens per row (longer examples are truncated)
  int grad_accum = 1;  // micro-batches per optimizer step
  double lr = 1e-3;    // peak
  double min_lr_ratio = 0.1;
  int warmup = 10;
  double weight_decay = 0.1;
  double clip = 1.0;  // global gradient norm; <= 0: off
  uint64_t seed = 0;
  // Resumable state (model + optimizer + step) is written here every
  // `checkpoint_every` steps and on Ctrl-C; empty: none.
  std::filesystem::path checkpoint_dir;
  int checkpoint_every = 0;  // 0: only on interruption
  int bos = -1, eos = -1;    // written into checkpoints' configs
};

struct LmStepLog {
  int step = 0;  // 1-based, after the update
  int steps = 0;
  double loss = 0;  // mean cross-entropy over the step's target tokens
  double lr = 0;
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;    // tokens in the step's rows (padding excluded)
  int64_t targets = 0;
  double seconds = 0;  // wall time of the step
};

struct LmTrainResult {
  std::vector<LmStepLog> log;  // every step run in this call
  int start_step = 0;          // > 0 when resumed from checkpoint_dir
};

// Trains `m` in place. Resumes from o.checkpoint_dir when it holds a state
// of the same run (shape and options). Throws rv::Error "step N: loss is
// nan" / "step N: gradient of TENSOR is inf" (the model is left at the last
// good state, and the checkpoint, if any, is the last good one), and
// rv::Error("interrupted") after saving a checkpoint on Ctrl-C.
LmTrainResult train_lm(TrainModel& m, const std::vector<Example>& data, const LmTrainOptions& o,
                       const std::function<void(const LmStepLog&)>& on_step = {});

// Packs examples drawn for step `step` into one micro-batch of o.rows × o.seq_len
// (exposed for tests): `targets` receives, per position, the id of the next
// token when it is a target of the same example, else -1.
Batch pack_batch(const std::vector<Example>& data, const LmTrainOptions& o, int step, int micro,
                 std::vector<int32_t>& targets);

}  // namespace rv::train
