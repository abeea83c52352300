// mergekit compatibility: run a mergekit YAML config (merge_method `linear`
// or `task_arithmetic`) natively, producing the tensors mergekit would.
//
// Semantics follow mergekit's implementation, operation by operation, in the
// config's `dtype` D (default: the base / first model's dtype); every
// elementwise operation is computed in f32 and rounded to D, as PyTorch does
// for bf16/f16 tensors on CPU, and sums over models accumulate in f32 before
// one rounding (torch's reduction accumulator):
//   linear:           res = Σ_D(w_i ⊗ x_i);            normalize: res ⊘ Σ w_i
//   task_arithmetic:  δ_i = x_i ⊖ base;  m = Σ_D(w_i ⊗ δ_i);  normalize: m ⊘ Σ w_i;
//                     out = base ⊕ m
// (⊗ ⊖ ⊕ ⊘: f32 op rounded to D). The result is cast to `out_dtype` if given.
// `weight` may be a number or a list of {filter: substring, value: w}
// entries (the first entry whose filter occurs in the tensor name wins; an
// entry without filter is the default). Gradients (lists of numbers) and
// other merge methods are rejected with an error naming them.
#pragma once

#include <filesystem>
#include <string>

#include "vector/vector.h"

namespace rv::vec {

struct MergekitOptions {
  bool force = false;
  uint64_t shard_size = 5'000'000'000ull;
  std::string command_line;
};

// Runs the merge described by `config` (a mergekit YAML file) into `out`.
// Model paths in the config are local directories (relative to the config
// file's directory when not absolute).
ApplyResult run_mergekit(const std::filesystem::path& config, const std::filesystem::path& out,
                         const MergekitOptions& opt, const Log& log);

}  // namespace rv::vec
