// Reasoning-vector arithmetic over safetensors models.
//
//   extract:  v = θ_tuned − θ_base           (element-wise, in f32)
//   apply:    θ_new = θ_target + Σ αᵢ·vᵢ     (in f32, rounded once to the output dtype)
//   inspect:  norms and value statistics of one tensor set (per tensor, per layer, total)
//   compare:  cosine similarity and norm ratios of two tensor sets
//   check:    is a vector compatible with a target model (and does the target share its lineage)?
//
// Every operation streams: one tile of one tensor at a time per worker, read
// from memory maps and written with positioned writes, so models far larger
// than RAM work. Outputs appear atomically (AtomicOutput). All functions
// throw rv::Error with a one-line "file: problem" message; they print
// nothing except through `Log` (warnings the CLI shows to the user).
//
// Thread-safety: each call is internally parallel on the process-wide pool
// (common/parallel.h, sized by set_num_threads). Calls from several threads
// are safe but are serialised on that pool; two calls must not write the
// same output path. `Log` is invoked from the calling thread only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "formats/model_dir.h"

namespace rv::vec {

// Receives user-facing warnings/notes ("skipped 2 tensors only in base: ...").
using Log = std::function<void(const std::string&)>;

struct ExtractOptions {
  DType dtype = DType::F32;      // dtype of the stored vector (f32 is exact for bf16 inputs)
  std::string include;           // ECMAScript regex; only matching tensor names (search semantics)
  std::string exclude;           // ECMAScript regex; matching names are left out
  bool strict = false;           // tensors present in only one model are an error, not a note
  bool fail_on_nonfinite = false;  // NaN/Inf in inputs or result is an error, not a warning
  bool force = false;            // overwrite an existing output
  uint64_t shard_size = 5'000'000'000ull;  // vector files larger than this are sharded
  std::string command_line;      // recorded in the vector's metadata
};

struct ExtractResult {
  size_t tensors = 0;
  uint64_t elements = 0;
  uint64_t bytes_written = 0;
  std::vector<std::string> only_in_base, only_in_tuned, filtered_out;
  uint64_t nonfinite = 0;
};

// base/tuned: model directories (or any tensor set). `out`: a .safetensors
// path (sharded into a directory of the same stem when above shard_size).
ExtractResult extract(const std::filesystem::path& base, const std::filesystem::path& tuned,
                      const std::filesystem::path& out, const ExtractOptions& opt, const Log& log);

enum class VocabMismatch { kError, kOverlap, kSkip };

struct ApplyTerm {
  std::filesystem::path vector;  // .safetensors file, index.json or directory
  double alpha = 1.0;
};

struct ApplyOptions {
  std::optional<DType> dtype;    // output dtype; default: the target's weight dtype
  VocabMismatch vocab_mismatch = VocabMismatch::kError;
  bool untie = false;            // tied target + vector with lm_head: write a separate lm_head
  bool strict = false;           // vector tensors absent from the target are an error
  bool fail_on_nonfinite = false;
  bool force = false;
  uint64_t shard_size = 5'000'000'000ull;
  std::string command_line;      // recorded in metadata and the model card
  // A vector that leaves target weights (".weight"/".bias" float tensors)
  // untouched, or whose recorded source config (architecture, hidden_size,
  // num_hidden_layers) differs from the target's, is refused unless partial;
  // with partial the model card lists the tensors left unchanged.
  bool partial = false;
  // Merge method (vector/sparsify.h), with the αᵢ as mergekit's weights:
  // "linear" (θ + Σ αᵢ·vᵢ, the default) or ties, dare_linear, dare_ties,
  // della, della_linear, breadcrumbs, breadcrumbs_ties: θ + merge(sparsify(vᵢ)).
  std::string method = "linear";
  double density = 1.0;         // fraction of each vector tensor kept, (0, 1]
  double epsilon = 0.15;        // della*: keep probability spread
  double gamma = 0.01;          // breadcrumbs*: fraction of largest entries dropped
  double lambda = 1.0;          // della*: scale of the merged delta
  std::optional<bool> rescale;  // default: the method's (dare*, della*: true)
  bool normalize = false;       // divide the merged delta by Σ αᵢ (agreeing terms)
  uint64_t seed = 0;            // random drops (dare*, della*)
};

struct ApplyResult {
  size_t tensors_changed = 0, tensors_copied = 0;
  uint64_t bytes_written = 0;
  std::vector<std::string> notes;  // what the policies did (vocab overlap, tied embeddings, ...)
  std::vector<std::string> files;
  uint64_t nonfinite = 0;
  std::vector<std::string> unchanged;  // target weights no vector touched (with partial)
};

// Writes a Hugging Face–loadable model directory at `out`: the target's
// non-weight files copied unchanged (config.json only altered when --untie or
// a different dtype demand it), weights θ + Σ αᵢ vᵢ, and a README.md model card.
ApplyResult apply(const std::filesystem::path& target, const std::vector<ApplyTerm>& terms,
                  const std::filesystem::path& out, const ApplyOptions& opt, const Log& log);

// Value statistics of one tensor (or an aggregate of several).
struct Stats {
  uint64_t numel = 0;
  double sum_sq = 0;        // Σ x², in double
  double max_abs = 0;
  uint64_t zeros = 0;       // exact zeros
  uint64_t nans = 0, infs = 0;
  double ref_sum_sq = -1;   // Σ θ² of the reference model's tensor, when given (<0: none)
  double l2() const;
  double rel() const;       // ‖v‖/‖θ‖, NaN when no reference
  void merge(const Stats& o);
};

struct InspectResult {
  std::vector<std::pair<std::string, Stats>> tensors;  // natural name order
  std::map<int, Stats> layers;                          // layer index -> aggregate
  Stats other;                                          // tensors outside the layer stack
  Stats total;
  nlohmann::json metadata;                              // the file's __metadata__
  nlohmann::json to_json() const;
};

// `reference`: optional model dir whose tensors give ‖θ‖ for relative norms.
InspectResult inspect(const std::filesystem::path& path, const std::filesystem::path& reference);

struct PairStats {
  uint64_t numel = 0;
  double dot = 0, a_sq = 0, b_sq = 0;
  double cosine() const;
  double norm_ratio() const;  // ‖a‖/‖b‖
  void merge(const PairStats& o);
};

struct CompareResult {
  std::vector<std::pair<std::string, PairStats>> tensors;
  std::map<int, PairStats> layers;
  PairStats total;
  std::vector<std::string> only_in_a, only_in_b, shape_mismatch;
  nlohmann::json to_json() const;
};

CompareResult compare(const std::filesystem::path& a, const std::filesystem::path& b);

struct CheckOptions {
  std::filesystem::path base;       // optional SFT model for the lineage measure
  double lineage_warn = 0.5;        // warn when the median ‖θ_T − θ_SFT‖/‖θ_SFT‖ exceeds this
};

struct CheckResult {
  enum class Verdict { kCompatible, kWarnings, kIncompatible };
  Verdict verdict = Verdict::kCompatible;
  std::vector<std::string> errors, warnings, notes;
  size_t matched = 0;
  // Lineage (only with --base): per-tensor relative distance and their median
  // over weight matrices (norm vectors, all near 1, would mask a foreign model).
  std::vector<std::pair<std::string, double>> lineage;
  double lineage_global = -1;
  nlohmann::json to_json() const;
};

CheckResult check(const std::filesystem::path& target, const std::filesystem::path& vector,
                  const CheckOptions& opt);

// A random control for `vector`: a seeded Gaussian vector with, tensor by
// tensor, the same names, shapes and L2 norms as `vector` (entries
// synth_normal(seed, hash_name(tensor), index), then scaled to the tensor's
// norm; norms summed in double), stored as one f32 .safetensors file at
// `out` (replaced if present; written atomically). The metadata is
// `vector`'s own (so `check` judges the control exactly as it judges the
// vector) plus reasonvec.kind = "random-control", reasonvec.seed and
// reasonvec.norms_of = `vector` as given. Deterministic: the same input and
// seed give the same bytes on any number of threads. Throws rv::Error on
// unreadable input or write failures.
void random_like(const std::filesystem::path& vector, uint64_t seed,
                 const std::filesystem::path& out);

// Metadata keys we write into vectors and models (provenance).
inline constexpr const char* kMetaPrefix = "reasonvec.";

}  // namespace rv::vec
