// mergekit compatibility: run a mergekit YAML config natively, producing the
// tensors mergekit would. merge_method: linear, task_arithmetic, ties,
// dare_linear, dare_ties, della, della_linear, breadcrumbs, breadcrumbs_ties.
//
// Semantics follow mergekit's implementation, operation by operation, in the
// config's `dtype` D (default: the base / first model's dtype); every
// elementwise operation is computed in f32 and rounded to D, as PyTorch does
// for bf16/f16 tensors on CPU, and sums over models accumulate in f32 before
// one rounding (torch's reduction accumulator):
//   linear:           res = Σ_D(w_i ⊗ x_i);            normalize: res ⊘ Σ w_i
//   task_arithmetic:  δ_i = x_i ⊖ base;  m = Σ_D(w_i ⊗ δ_i);  normalize: m ⊘ Σ w_i;
//                     out = base ⊕ m
//   ties, dare_*, della*, breadcrumbs*: δ_i = x_i ⊖ base, sparsified per
//                     tensor (sparsify.h; computed in f32, rounded once to
//                     D), then merged as sparsify.h's merge_deltas in D
//                     (sign election for *_ties, ties and della), della*
//                     scaled by the first model's lambda; out = base ⊕ m.
// (⊗ ⊖ ⊕ ⊘: f32 op rounded to D). The result is cast to `out_dtype` if given.
// Defaults as mergekit's: normalize true for linear, ties and della; rescale
// true for dare_* and della*; density 1, epsilon 0.15, gamma 0.01, lambda 1.
//
// Parameters: top-level `parameters` may hold normalize, rescale, int8_mask
// (accepted; it only changes the dtype of mergekit's sign mask, so it has no
// effect on the f32 arithmetic here) and defaults for the per-tensor ones;
// each model's `parameters` holds weight, density, epsilon, gamma, lambda.
// Each per-tensor parameter may be a number or a list of {filter: substring,
// value: v} entries (the first entry whose filter occurs in the tensor name
// wins; an entry without filter is the default; a model's own entries come
// before the top-level ones). Gradients (lists of numbers), `slices` and
// other merge methods are rejected with an error naming them.
//
// Random drops (dare_*, della*) come from MergekitOptions::seed, not
// torch's generator: reproducible here, but not mergekit's exact draws.
#pragma once

#include <filesystem>
#include <string>

#include "vector/vector.h"

namespace rv::vec {

struct MergekitOptions {
  bool force = false;
  uint64_t shard_size = 5'000'000'000ull;
  std::string command_line;
  uint64_t seed = 0;  // random drops of dare_* / della* (sparsify.h)
};

// Runs the merge described by `config` (a mergekit YAML file) into `out`.
// Model paths in the config are local directories (relative to the config
// file's directory when not absolute).
ApplyResult run_mergekit(const std::filesystem::path& config, const std::filesystem::path& out,
                         const MergekitOptions& opt, const Log& log);

}  // namespace rv::vec
